"""Landscapes as local processes: launch (`testbed up`), state file, tear-down (`testbed down`),
process groups, CPU plan, gateway (HAProxy), SeaweedFS and Prometheus."""
