from onetrip.ids import new_id, new_token


def test_ids_made_in_a_burst_sort_in_the_order_they_were_made():
    ids = [new_id("evt") for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_ids_carry_their_prefix_and_a_fixed_length():
    value = new_id("pay")
    assert value.startswith("pay_") and len(value) == len("pay_") + 26


def test_tokens_are_unguessable_and_url_safe():
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(
        len(t) >= 32
        and set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for t in tokens
    )
