"""A simulated inference engine and cluster, to prove autoscaling policies on traces.

Time is simulated, so a day of traffic replays in seconds (`Simulation`); the same pods' metrics
can be served over HTTP in Prometheus text format (`server.serve_in_background`) for an end-to-end
test with a real Prometheus.
"""
