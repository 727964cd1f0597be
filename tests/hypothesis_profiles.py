"""Hypothesis budgets for the script-proof tests, chosen with ``--hypothesis-profile``.

``default`` and ``ci`` are Hypothesis' built-in profiles, so ``--hypothesis-profile ci`` works as is; this
module only decides how many examples *these* tests run under each (it does not re-register them, so other
test modules keep their own settings). ``long`` is registered here; because Hypothesis' pytest plugin loads
the profile before test modules are imported, select it with this module loaded as a plugin:

    python -m pytest -p tests.hypothesis_profiles --hypothesis-profile long tests/test_script_proof.py

(or import this module from a ``conftest.py``).
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

EXAMPLES = {"default": 200, "ci": 1000, "long": 5000}

settings.register_profile("long", max_examples=EXAMPLES["long"], deadline=None)


def proof_settings(scale: float = 1.0) -> settings:
    """Settings for one property test: the example budget of the active profile (times ``scale``)."""
    profile = settings.get_current_profile_name().split("-with-")[0]  # the plugin's "-with-verbose-verbosity"
    examples = EXAMPLES.get(profile) or settings().max_examples
    return settings(
        max_examples=max(1, int(examples * scale)),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
