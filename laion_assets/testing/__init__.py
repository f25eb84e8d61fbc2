"""Test scaffolding shared by tests, benches and the demo: real servers that misbehave on purpose."""
