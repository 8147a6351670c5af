"""bench/routing_sim.py's parts: the plan, the workloads, Córtex's config, the clients, a case
(one workload under one rule), the report and the plot."""
