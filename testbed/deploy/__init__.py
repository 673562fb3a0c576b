"""The landscapes on a container engine: compose files and Kubernetes overlays from the profiles."""
