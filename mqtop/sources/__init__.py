"""Read-only fleet data from outside this process (``sources:``): today Prometheus and the
stores that speak its HTTP API (Thanos, Mimir, VictoriaMetrics)."""
