"""Data contracts: rules per table, and Great Expectations suites and reports from them."""
