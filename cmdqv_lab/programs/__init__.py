"""The compile stage: routed command streams -> engine op programs, and the topology they run on.

Every scenario is a declaration (:mod:`cmdqv_lab.scenarios`): a *workload* (the one stream form,
:data:`~cmdqv_lab.workloads.stream.WORKLOAD_SCHEMA` chunks per issuing CPU, from a generator or a
real trace), a *routing* (which queue each batch of a guest goes to,
:func:`~cmdqv_lab.driver.route_rows.route_rows`; host streams need none), a :class:`Topology` (queues,
which queue each CPU uses, VMM locks, the host's CMDQV IRQ thread) and a platform (costs). This
package turns them into what the timing engine runs:

* :mod:`.topology` builds the queues and per-CPU routes once, and the engine configuration;
* :mod:`.compile` turns each CPU's routed chunks into op programs (:class:`~cmdqv_lab.engine.stream.OpBlock`),
  drawing each command's service time from the platform (one seeded draw per command, in order).

Data flows one way: workloads -> routing -> programs -> engine; nothing here imports a scenario.
"""
