"""anyir.eval: full-resolution per-task evaluation (PromptIR protocol + optional pyiqa metrics).

Import the submodules directly (``anyir.eval.evaluate``, ``anyir.eval.metrics``, ...); this
package stays import-light so ``anyir --help`` is fast.
"""
