"""RabbitMQ: collector, message actions, TLS, kill tests."""
