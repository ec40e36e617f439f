"""Adding a method, a strategy or a suite is adding one file: what an entry is lives on its class.

The entries of ``_throwaway_entries.py`` are named by no test and listed nowhere; they only declare
their capabilities. The property tests must run on them (and only the properties they declare), and
the readers of those declarations (the playground, the presenter limits, the CLI help) must
include them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _asserts import declaring
from _throwaway_entries import METHOD, STRATEGY, SUITE, registered

from mtl_core.balancing import METHODS
from mtl_core.cli import build_parser
from mtl_core.cli.common import method_help, strategy_help, tag_help
from mtl_core.runs.store import lab_home
from mtl_core.strategies import STRATEGIES
from mtl_core.suites import SUITES
from mtl_core.workshop.limits import LimitError, check_limits
from mtl_core.workshop.playground import combine_all, gradient_methods

TESTS = Path(__file__).parent
PROPERTY_FILES = ["test_gradient_methods.py", "test_loss_methods.py", "test_strategies.py", "test_suites.py"]


@pytest.mark.slow
def test_property_tests_run_on_a_new_entry_by_what_it_declares() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "_throwaway_entries", "-p", "no:cacheprovider",
         "-k", "throwaway", *(str(TESTS / name) for name in PROPERTY_FILES)],
        capture_output=True, text=True, cwd=TESTS.parent, env=env, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ran = set(re.findall(r"::(test_\w+)\[[^\]]*throwaway[^\]]*\] PASSED", result.stdout))
    declared = {
        # gradient methods: every one, then what the method declares
        "test_shape_and_finite", "test_identical_gradients_give_a_parallel_direction",
        "test_weights_reproduce_the_direction", "test_permuting_tasks_leaves_the_direction_unchanged",
        "test_direction_does_not_depend_on_the_scale",
        "test_weights_positive_finite_and_recorded_every_step", "test_single_task_is_finite",
        # strategies and suites: every one
        "test_parameter_partition", "test_ownership_by_gradients", "test_encode_decode",
        "test_regularization_only_where_declared",
        "test_build_matches_task_specs", "test_declared_capabilities_hold", "test_split_sizes_are_sane",
    }
    assert declared <= ran, sorted(declared - ran)
    # … and nothing the entries do not declare: the method is neither randomised nor a loss weighting.
    assert not ran & {"test_generator_makes_randomised_methods_reproducible",
                      "test_zero_losses_give_finite_objective_and_gradients"}


def test_readers_of_the_declarations_include_a_new_entry() -> None:
    with registered():
        assert METHOD in declaring(METHODS, kind="gradient", weighted_sum=True, permutation_invariant=True)
        assert STRATEGY in declaring(STRATEGIES, has_shared_parameters=False)
        # the playground offers it and opens its sentence with the class's lead
        assert METHOD in [m["name"] for m in gradient_methods()]
        outcome = combine_all([[1.0, 0.0], [-0.5, 2.0]], [METHOD])[METHOD]
        assert outcome.error is None and outcome.sentence.startswith("The throwaway method averaged the gradients")
        # the CLI help lists it, by kind
        assert "combines the task gradients (" in method_help() and METHOD in method_help().split("gradients (")[1]
        assert STRATEGY in strategy_help() and STRATEGY not in tag_help()
        train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
        assert METHOD in re.sub(r"\s+", " ", train.format_help())
        # the presenter limits cap its size option, whatever its name
        lab_home().mkdir(parents=True, exist_ok=True)
        (lab_home() / "limits.yaml").write_text("max_samples: 30\n", encoding="utf-8")
        with pytest.raises(LimitError, match=r"asks for n_rows = 40\. Lower n_rows\."):
            check_limits([{"suite": SUITE}], owner="s1")
        check_limits([{"suite": SUITE, "suite_options": {"n_rows": 30}}], owner="s1")
    assert METHOD not in METHODS and STRATEGY not in STRATEGIES and SUITE not in SUITES
