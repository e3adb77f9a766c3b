"""`neurontui tune`: the best configuration under a latency bound, with its cost, energy and share of peak.

Pure, torch-free parts the session drives: the bound (`slo`), the peak-rate search and the choice
of a winner (`search`), dollars per million inferences (`cost`), joules per inference (`energy`),
the device's peak FLOP rate (`peaks`), the result document (`result`) and its hints (`hints`).
"""
