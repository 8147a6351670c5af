"""What every benchmark shares, one concept a module.

- ``machine``: the machine a run is on, and which Córtex it measures;
- ``pinning``: which CPU the relays get and which the load side;
- ``processes``: subprocesses and their logs, stopped on the way out; free ports;
- ``servers``: starting the fake upstream, Córtex, nginx, the hand-written relay, redis;
- ``cpu``: CPU seconds of processes and of the whole machine (others' share, steal);
- ``memory``: RSS, PSS, USS and open files of processes;
- ``loadgen``: the load generator (hand-written HTTP/1.1, both client dialects);
- ``chats``: the requests it sends, and the fake upstream's knobs in them;
- ``loads``: a load measured with the CPU of the processes serving it, and its warm-up;
- ``rounds``: interleaved rounds, a run's figures, and the figures of runs over rounds;
- ``stats``: percentiles and summaries;
- ``tables``: tables, units, and the header every report starts with;
- ``cli``: the command line (``--quick``) and running a benchmark's main;
- ``results``: a run's report, facts and footer notes, and its JSON in bench/results/.
"""
