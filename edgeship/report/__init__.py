"""What a run leaves and how it is shown: the results store (store), the report (publish, plots,
reference_figures, templates/), comparisons between runs (regressions), the fleet and demo tables
(fleet_table, demo_table, ocr), demo media and headless-Chromium screenshots (media, browser)."""
