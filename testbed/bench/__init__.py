"""Every `make bench*` command (one module each) and what only they need: the bare baseline
app, the OTLP sink, the headless scenario runs."""
