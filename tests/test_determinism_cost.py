"""The bench's view of the bit-determinism settings: it reads what training set, and puts it
back after timing the step under other settings."""

from __future__ import annotations

import pytest


def test_the_settings_read_are_the_ones_training_sets():
    from dcgan.gan.determinism import seed_everything
    from dcgan.machine.determinism_cost import Settings, current

    seed_everything(0)
    assert current() == Settings(op_determinism=True, constant_folding=False, remapping=False)


def test_applied_puts_the_settings_back_even_after_an_error():
    from dcgan.gan.determinism import seed_everything
    from dcgan.machine.determinism_cost import VARIANTS, applied, current

    seed_everything(0)
    before = current()
    for settings in VARIANTS.values():
        assert settings != before
        with pytest.raises(RuntimeError), applied(settings):
            assert current() == settings
            raise RuntimeError("a step that failed")
        assert current() == before
