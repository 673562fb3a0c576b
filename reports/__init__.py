"""Results of a run turned into tidy tables, verdicts and a report (HTML and Markdown).

Everything here is a pure function on pandas DataFrames except `rundir` (reading and writing the
run directory) and `render.render_run` (which reads a run directory and writes the report files).
"""
