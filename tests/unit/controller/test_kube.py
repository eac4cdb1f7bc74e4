"""The comparison that decides whether the operator writes: desired ⊆ what the API server holds."""

from __future__ import annotations

from gpupool.controller.kube import contains, needs_apply, with_applied_hash


def test_server_defaults_and_bookkeeping_are_not_drift() -> None:
    desired = {"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "engine"}]}}}}
    live = {
        "metadata": {"resourceVersion": "7", "generation": 3},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {"spec": {"containers": [{"name": "engine", "imagePullPolicy": "IfNotPresent"}]}},
        },
    }
    assert contains(live, desired)


def test_omitted_zero_values_match_but_zero_numbers_must_be_present() -> None:
    assert contains({"value": 1000}, {"value": 1000, "globalDefault": False, "labels": {}})
    assert not contains({}, {"replicas": 0})  # replicas 0 is always serialised
    assert contains({"replicas": 0}, {"replicas": 0})


def test_changed_values_and_list_lengths_are_drift() -> None:
    assert not contains({"spec": {"replicas": 3}}, {"spec": {"replicas": 2}})
    assert not contains({"args": ["a", "b"]}, {"args": ["a"]})
    assert not contains({"args": ["a"]}, {"args": ["a", "b"]})


def test_a_field_we_stop_setting_changes_the_applied_hash() -> None:
    before = {"kind": "Service", "metadata": {"name": "m", "labels": {"a": "1", "b": "2"}}}
    after = {"kind": "Service", "metadata": {"name": "m", "labels": {"a": "1"}}}
    live = with_applied_hash(before)
    assert not needs_apply(before, live)
    # `after` is a subset of what runs, yet it must be applied so that label b goes away.
    assert contains(live, after)
    assert needs_apply(after, live)
    assert needs_apply(before, None)
