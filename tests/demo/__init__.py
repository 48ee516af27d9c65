"""The embedded demo and its workload."""
