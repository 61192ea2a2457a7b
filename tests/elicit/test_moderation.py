"""The rules check used when the provider has no moderation endpoint."""

import time

from elicit.moderation import check_rules


def test_rules_flag_what_is_plainly_not_a_contribution():
    assert check_rules("Buy now at https://spam.example").reasons == ("spam_link",)
    assert check_rules("I will hurt you if you disagree").reasons == ("threat",)
    assert check_rules("THIS IS ALL IN CAPITALS AND IT GOES ON AND ON FOR EVER").flagged
    assert check_rules("ha" * 30).reasons == ("repetition",)


def test_an_honest_card_is_not_flagged():
    card = (
        "Support without judgment\nBeing there so she can decide.\n"
        "MOMENTS when she feels judged\nSIGNS of FEAR in her voice\nOPPORTUNITIES to decide"
    )
    assert not check_rules(card).flagged


def test_the_rules_take_linear_time_on_text_full_of_capitals():
    # The first version's "shouting" pattern backtracked exponentially: 82 s on this input.
    text = "MOMENTS SIGNS OPPORTUNITIES FEELINGS WAYS " * 3 + "and then lowercase"
    started = time.perf_counter()
    check_rules(text)
    check_rules("A" * 35 + " a")
    assert time.perf_counter() - started < 0.5
