"""anyir.data: recipes -> sources -> shard sets (writer, manifest, reader) and balance planning.

Import from the submodules (``anyir.data.recipe``, ``.shard_writer``, ``.manifest``,
``.shard_reader``, ``.balance``, ``.stream``); this package file stays import-light on purpose.
"""
