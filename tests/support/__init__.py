"""Test servers (TGI, OpenAI, Hub protocols), tiny models and arena simulators.

Used by the tests and benchmarks; not part of the installed package."""
