"""Redis: collector, list and stream actions, cluster, kill tests."""
