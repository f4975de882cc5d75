"""The fleet: what each board gets (plan, bundle), the runtime's offline wheelhouses (wheels),
the playbooks run as a user runs them (playbook), and the simulated boards (sim)."""
