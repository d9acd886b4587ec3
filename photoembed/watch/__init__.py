"""A live library: watch the photo folders and keep the catalog true to the disk.

- :mod:`photoembed.watch.observers` adapts watchdog (one native observer per root, polling where native
  events are unavailable); its callbacks only put :class:`~photoembed.watch.events.RawEvent` records on a
  queue.
- :mod:`photoembed.watch.debounce` turns bursts of raw events into sets of dirty paths once things are quiet.
- :mod:`photoembed.watch.planner` holds back half-written files and shapes the dirty paths into a compact
  scope for one :meth:`photoembed.core.indexer.Indexer.sync` call.
- :mod:`photoembed.watch.service` runs it all as a generator on the thread that owns the model.
- :mod:`photoembed.watch.state` lets another process (``photoembed status``) see a running watcher.

Nothing is imported here, so that ``photoembed status`` can read the state file without loading watchdog.
"""
