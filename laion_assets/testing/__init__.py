"""Reusable scaffolding for tests, benches and the demo: real servers on 127.0.0.1 (S3, misbehaving
image hosts), never mocks."""
