"""What drives the system under test: flows, the arrival engine and the Locust entry point."""
