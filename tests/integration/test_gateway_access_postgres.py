"""The gateway's sign-in, per-user limits and its audit entry on a real PostgreSQL store:
the checks of tests/unit/test_gateway_auth_limits.py (SQLite there), run again where a
hospital keeps its store, with its concurrent writers."""

import pytest

from medfactory.store.db import open_store
from tests.unit import test_gateway_auth_limits as checks
from tests.unit.test_gateway_auth_limits import backend  # noqa: F401 (a fixture)

ON_POSTGRES = pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)


@pytest.fixture
def store(store_url):
    store = open_store(store_url)
    yield store
    store.close()


@ON_POSTGRES
def test_a_token_is_its_user_and_the_feedback_is_theirs_on_postgresql(store, backend):  # noqa: F811
    checks.test_a_token_is_its_user_whatever_the_body_says_and_the_feedback_is_theirs(
        store, backend
    )


@ON_POSTGRES
def test_only_a_service_key_names_the_user_on_postgresql(store, backend):  # noqa: F811
    checks.test_only_a_service_key_names_the_user_in_its_header(store, backend)


@ON_POSTGRES
def test_twenty_clients_on_one_users_limit_on_postgresql(store, backend):  # noqa: F811
    checks.test_twenty_clients_hammer_one_users_limit_while_another_is_served_every_429_counted(
        store, backend
    )


@ON_POSTGRES
def test_an_experiments_start_is_audited_once_on_postgresql(store, backend):  # noqa: F811
    checks.test_starting_an_experiment_is_in_the_audit_log_once(store, backend)
