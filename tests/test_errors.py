from __future__ import annotations

from tally import errors


def test_error_shape_and_status_split():
    e = errors.UnknownMetric(
        "Unknown metric 'revenu'. Did you mean 'revenue'?", suggestion="revenue"
    )
    assert e.to_dict() == {
        "error": {
            "code": "unknown_metric",
            "message": "Unknown metric 'revenu'. Did you mean 'revenue'?",
            "details": {"suggestion": "revenue"},
        }
    }
    assert isinstance(e, errors.CallerError) and 400 <= e.status < 500
    assert errors.WarehouseError("x").status >= 500
    assert not isinstance(errors.WarehouseError("x"), errors.CallerError)


def test_codes_are_unique_per_class():
    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type)
        and issubclass(c, errors.TallyError)
        and c not in (errors.TallyError, errors.CallerError, errors.ServerFault, errors.NotFound)
    ]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes)), codes


def test_did_you_mean():
    assert errors.did_you_mean("revenu", ["revenue", "order_count"]) == "revenue"
    assert errors.did_you_mean("zzz", ["revenue"]) is None
