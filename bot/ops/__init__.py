"""Operations: health and readiness endpoint, Prometheus metrics, log context."""
