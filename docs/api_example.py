from rram_lsm.launch.api import Graph

g = Graph("hello")
g.node("source", "synthetic_dvs", samples=5)
g.node("lsm", "lsm", preset="nmnist")
g.node("sink", "null_sink")
g.edge("source", "lsm")
g.edge("lsm", "sink")
with g.start() as run:                       # one process per node, supervised
    for item in run.results(timeout=120):    # the features reaching the sink, as they come
        print(item.sample, item.label, item.data.shape)
    print(run.telemetry()["lsm"]["msgs_in"])
