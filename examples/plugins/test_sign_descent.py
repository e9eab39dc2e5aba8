"""The conformance battery as one test of a plugin's own suite (pytest collects test_* functions)."""

from descentlab.testing import check_rule

from sign_descent import SIGN_DESCENT  # the plugin file beside this one


def test_sign_descent_conforms():
    check_rule(SIGN_DESCENT)
