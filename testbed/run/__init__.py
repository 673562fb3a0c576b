"""One experiment (`testbed run`): the landscape it launches, the seeding, the load generator, what
is collected while it runs, the progress line and the manifest; the capacity search (`testbed
capacity`), a step per load phase on one landscape; `testbed report` re-renders either."""
