"""Benchmarks: how close mailchimp-stream gets to Mailchimp's own limits.

`python -m bench` (or `make bench`) runs them side by side against the local
Mailchimp emulator with an injected per-call latency, and prints one table;
docs/benchmarks.md explains the figures. Benchmarks print, never assert.
"""
