"""One experiment (`testbed run`): the landscape it launches, the seeding, the load, what is
collected while it runs, the progress line and the manifest; `testbed report` re-renders it."""
