"""`mlperf-ext report`: one self-contained, interactive HTML file of a workdir's results.

Modules: ``data`` (what each section needs, read through the results store and the tiers' own
functions, as typed records), ``figures`` (plotly figures of those records), ``page`` (the HTML page:
sections, escaping, the results table, the inline JavaScript), ``commands`` (the subcommand).
"""
