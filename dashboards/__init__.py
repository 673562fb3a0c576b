"""The operators' Grafana boards and Prometheus rules, generated and checked as code (docs/dashboards.md)."""
