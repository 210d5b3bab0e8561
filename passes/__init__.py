"""Graph-to-graph passes, the PassManager that runs them, and instruments that watch it.

    from passes import PassManager, Verify, Timing
    result = PassManager("shape-infer,dce", instruments=[Verify(), Timing()]).run(graph)

Adding a pass: write passes/<name>.py with a function decorated by `function_pass` (or a
`Pass` subclass given to `register_pass`) and import the module below so it registers. Name
the function after what it does (`eliminate_dead_code`), not after the module (`dce`), so
the package attribute `passes.dce` stays the module.
`passes` imports only `ir`.
"""
from .registry import (FunctionPass, Pass, PassContext, PassInfo, PassOption, PipelineError,
                       build_pipeline, format_pipeline, function_pass, get_pass, parse_pipeline,
                       register_pass, registered_passes, unregister_pass)
from .manager import Instrument, PassManager, PassRecord, PassResult, run_pipeline
from .instruments import (Diff, DumpDir, PrintIR, ReferenceCheck, Statistics, Timing, Verify,
                          compare_arrays, format_table)

# -- built-in passes (importing a module registers its passes) ---------------------------------
from .shape_infer import infer_shapes
from .dce import eliminate_dead_code, live_nodes
from . import autodiff  # noqa: E402,F401  (registers the `autodiff` pass)
from .constant_fold import fold_constants  # noqa: E402
from .simplify import simplify  # noqa: E402
from .cse import eliminate_common_subexpressions  # noqa: E402
from .fuse import analyse_fusion, fuse  # noqa: E402
from .plan_memory import plan_graph, plan_memory  # noqa: E402
from .pipelines import LEVELS, pipeline_for  # noqa: E402
