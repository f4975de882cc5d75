"""Converting a model for a target: the request and its host-side checks (request, inputs,
model_checks), the cache (cache), the sandboxed container run (container), the whole run
(run) and what `invoke convert` prints (summary)."""

from edgeship.convert.request import Plan, Request, find_target, parse_options, plan
from edgeship.convert.run import convert
from edgeship.convert.summary import summary

__all__ = ["Plan", "Request", "convert", "find_target", "parse_options", "plan", "summary"]
