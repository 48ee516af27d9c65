"""SQS: collector, actions, native move tasks, ElasticMQ, kill tests."""
