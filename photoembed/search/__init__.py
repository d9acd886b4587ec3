"""Search: combined text/photo queries, filters and the search service the front ends call."""
