"""Seeding identity pools: plan a data set, write it (bulk or through the API), verify, export."""
