"""anyir.bench: benchmark tracks (model and budget fixed, the data is the submission) and their runs.

``track`` defines and loads tracks (``data_recipes/tracks/*.yaml``), ``submission`` checks a
submission against a track's rule and names it, ``run`` trains, evaluates and logs its seeds. The
ranking is a leaderboard query (:mod:`anyir.leaderboard.tracks`). See docs/tracks.md.
"""
