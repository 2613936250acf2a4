"""What the planner reads from words: references back, actions, orders, dates, and the words to search."""

from __future__ import annotations

from datetime import date

import pytest

from loupe.agent import intents
from loupe.agent.conversation import Turn, ToolRun
from loupe.agent.planner import plan
from loupe.agent.wording import in_plain_words
from loupe.tools.records import MatchedRecord, MatchLabel, ToolName

pytestmark = pytest.mark.fast  # no model is loaded: part of the fast tier

RECORDS = [MatchedRecord(id=f"r{n}", file_name=f"{n:03d}.jpg", path=f"/c/{n:03d}.jpg", score=0.9,
                         match=MatchLabel.TEXT_MATCH, why="its printed text matches") for n in range(1, 6)]
TODAY = date(2026, 12, 1)


@pytest.mark.parametrize(("text", "expected"), [
    ("read that one", ["r1"]), ("the top one - what's on it?", ["r1"]), ("what does it say?", ["r1"]),
    ("can you read him for me", ["r1"]), ("the second one", ["r2"]), ("number 3", ["r3"]), ("#4", ["r4"]),
    ("the last one", ["r5"]), ("the last two", ["r4", "r5"]), ("the first two", ["r1", "r2"]),
    ("now find more like tht one", ["r1"]),
    ("the 2nd receipt, what's the total?", ["r2"]), ("#9", []),
    ("cool, how much did we spend there?", ["r1"]),  # the shop of the receipt just found
])
def test_follow_ups_point_back_by_pronoun_ordinal_and_number(text: str, expected: list[str]) -> None:
    assert [r.id for r in intents.points_back(text, RECORDS, has_image=False)] == expected


@pytest.mark.parametrize("text", ["hmm just the 2018 ones actually", "ok, only the ones from march",
                                  "actually, without the screenshots", "actually wait just the ones from january",
                                  "Restrict that to the ones dated 20 to 31 March 2018.", "limit it to 2017",
                                  "Thank you. Of those, I only need the ones from February 2018.",
                                  "No, that's far too many. Only December 2017."])
def test_a_narrowing_after_an_interjection_still_narrows(text: str) -> None:
    assert intents.refines(text, "everything from mr diy")


@pytest.mark.parametrize("text", ["wats the totl on dis", "amt payable on this pls", "how much is due on this one"])
def test_a_total_asked_in_shorthand_is_a_total(text: str) -> None:
    assert intents.ASKS_TOTAL.search(text)


def test_a_new_request_is_not_taken_for_a_reference() -> None:
    long_request = "find the first receipt from aeon today, I really need it for my taxes this week"
    assert intents.points_back(long_request, RECORDS, has_image=False) == []
    assert intents.points_back("find this", RECORDS, has_image=True) == []  # "this" is the new image
    assert intents.points_back("read that one", [], has_image=False) == []
    assert intents.points_back("is there a receipt from shell?", RECORDS, has_image=False) == []  # no "spend there"


@pytest.mark.parametrize(("text", "column", "descending"), [
    ("which of these is the cheapest?", "amount", False), ("which one is cost the least?", "amount", False),
    ("the most expensive one?", "amount", True), ("which was the priciest", "amount", True),
    ("the newest one", "date", True), ("and the oldest?", "date", False),
    ("Which one is the most cheap?", "amount", False),
])
def test_comparisons_order_the_previous_results(text: str, column: str, descending: bool) -> None:
    assert intents.order(text) == intents.Order(column, descending)
    assert intents.refines(text)  # no new subject: it reorders what was found


@pytest.mark.parametrize(("text", "conditions"), [
    ("only the March ones", [("date", "contains", "-03-")]),
    ("hmm, just the ones from february", [("date", "contains", "-02-")]),
    ("what about January 2018?", [("date", ">=", "2018-01-01"), ("date", "<=", "2018-01-31")]),
    ("august 2017 only", [("date", ">=", "2017-08-01"), ("date", "<=", "2017-08-31")]),
    ("february 2016", [("date", ">=", "2016-02-01"), ("date", "<=", "2016-02-29")]),
    ("just those from 2017", [("year", "=", 2017)]),
    ("receipts from last year", [("year", "=", 2025)]),
    ("only the ones under 20", [("price", "<", 20.0)]),
    ("just the febuary one", [("date", "contains", "-02-")]),  # typed fast
    ("january only. go", [("date", "contains", "-01-")]),
    ("ah just the one from febuary 2017", [("date", ">=", "2017-02-01"), ("date", "<=", "2017-02-28")]),
    ("spending in Q3 2017", [("date", ">=", "2017-07-01"), ("date", "<=", "2017-09-30")]),
    ("the 2nd quarter of 2018", [("date", ">=", "2018-04-01"), ("date", "<=", "2018-06-30")]),
    ("receipts since march 2018", [("date", ">=", "2018-03-01")]),
    ("from 15 march 2018 onwards", [("date", ">=", "2018-03-15")]),
    ("receipts from march 2018", [("date", ">=", "2018-03-01"), ("date", "<=", "2018-03-31")]),  # March's own
    ("after march 2018", [("date", ">=", "2018-04-01")]),
    ("before 1 feb 2018", [("date", "<=", "2018-01-31")]),
    ("up to dec 2017", [("date", "<=", "2017-12-31")]),
    ("jan vs feb 2018", [("date", ">=", "2018-01-01"), ("date", "<=", "2018-02-28")]),  # two adjacent months
    ("receipts dated 4/12/2017", [("date", ">=", "2017-12-04"), ("date", "<=", "2017-12-04")]),  # day first
    ("how much on 12/28/2017", [("date", ">=", "2017-12-28"), ("date", "<=", "2017-12-28")]),  # no 28th month
    ("march 15th, 2018 receipt", [("date", ">=", "2018-03-15"), ("date", "<=", "2018-03-15")]),
    ("just the 15th jan one", [("date", "contains", "-01-15")]),  # that day in any year
    ("what did i buy on christmas day 2018?", [("date", ">=", "2018-12-25"), ("date", "<=", "2018-12-25")]),
    ("the second half of march 2018, so 16th to 31st", [("date", ">=", "2018-03-16"), ("date", "<=", "2018-03-31")]),
    ("the week of 19 march 2018", [("date", ">=", "2018-03-19"), ("date", "<=", "2018-03-25")]),
    ("receipts from 30 february 2018", [("date", ">=", "2018-02-01"), ("date", "<=", "2018-02-28")]),  # no such day
    ("I am search the receipts which the total is 5.90", [("total", "=", 5.9)]),  # the printed total, exactly
    ("the one that came to RM 12,50", [("total", "=", 12.5)]),
    ("Restrict that to the ones dated 20 to 31 March 2018.", [("date", ">=", "2018-03-20"),
                                                              ("date", "<=", "2018-03-31")]),
    ("between 26 december and 31 december 2017", [("date", ">=", "2017-12-26"), ("date", "<=", "2017-12-31")]),
    ("On the fourth of December 2017", [("date", ">=", "2017-12-04"), ("date", "<=", "2017-12-04")]),  # in words
    ("march the twenty-first 2018", [("date", ">=", "2018-03-21"), ("date", "<=", "2018-03-21")]),
    ("asia mart receipts", []),  # "mart" is no month
    ("may I see the receipts", []),  # nor is the verb "may"
])
def test_date_year_and_price_filters(text: str, conditions: list[tuple]) -> None:
    found = [(c["column"], c["op"], c["value"]) for c in intents.filters(text, TODAY)]
    assert found == conditions


@pytest.mark.parametrize(("text", "words"), [
    ("Could you find the receipts from Perniagaan Zheng Hui, please?", "receipts from Perniagaan Zheng Hui"),
    ("hey, where did my Watsons receipt go?", "where did my Watsons receipt go"),
    ("pls find receipt of GL handicraft", "receipt of GL handicraft"),
    ("i need the lightroom gallery receipts from 2017", "lightroom gallery receipts"),
    ("pull up all my mr diy receipts, I'm trying to see how much I've blown there", "mr diy receipts"),
    ("my car's been guzzling fuel lately - can you pull up every petrol station receipt i've got?",
     "every petrol station receipt i've got"),  # the request after the story
    ("the receipt from restaurant Warakuya, can you find for me?", "receipt from restaurant Warakuya"),
    ("uh where's the receipt for the batteries i bought? need to check the size",
     "uh where's the receipt for the batteries i bought"),  # the reason after the question
    ("I bought safety pins at a shop off Jalan Pudu. Would you kindly look for that receipt among my things?",
     "I bought safety pins at a shop off Jalan Pudu"),  # the request after the story names nothing: the story
    ("I am search the receipts which the total is 5.90, please show me all of it",
     "I am search the receipts which the total is 5.90"),  # "all of it" after the frame names nothing
    ("can you find whatever i bought on christmas day 2018, maybe two things", "whatever i bought on"),
    ("He shopped in Setapak. I would be most grateful if you could show me all the receipts from Setapak.",
     "receipts from Setapak"),  # a polite frame before the request
    ("Before I was living in Puchong. Please show me all receipt from the shops there, I want to remember it.",
     "Before I was living in Puchong"),  # "the shops there" and the reason after name nothing: the story
    ("its 1am and im doing the tax stuff. need every receipt from Hon Hwa Hardware",  # "need every receipt" is the
     "its 1am and im doing the tax stuff. need every receipt from Hon Hwa Hardware"),  # request: not cut as a reason
    ("I bought a pipe wrench there. Can you find that receipt so I can wave it under his nose?",
     "I bought a pipe wrench there"),  # the purpose after the request says why
    ("Eh, I need all my Mr DIY resit lah, boss wants to see", "Eh, I need all my Mr DIY resit lah, boss wants to see"),
    # a "reason" after the comma that would leave nothing to search is the request itself
    ("PETRONAS PETROL RECEIPT NOT THE SHELL ONE", "PETRONAS PETROL RECEIPT"),  # what is ruled out names nothing
    ("the Three Stooges receipts, the bistro, not the movie", "Three Stooges receipts, the bistro"),
    ("Got resit from that vegetarian restaurant in PJ or not?", "resit from that vegetarian restaurant in PJ"),
    ("Every receipt from a shop with the word 'hardware' in its name. All of them", '"hardware"'),  # a quote
    ("the nando's receipt and the mcdonald's one", "nando's receipt and the mcdonald's one"),  # no quote
])
def test_search_words_drop_greetings_frames_and_filters(text: str, words: str) -> None:
    assert intents.search_words(text) == words


def _turn(text: str, image: str | None = None, previous: ToolRun | None = None) -> Turn:
    return Turn(request=text, image=image, image_is_new=image is not None, previous_search=previous,
                previous_records=previous.result["records"] if previous else [])


PREVIOUS = ToolRun(ToolName.TEXT_SEARCH, {"query": "aeon", "k": 10, "filters": []}, "plan_1",
                   {"records": RECORDS})


@pytest.mark.parametrize(("text", "image", "tools"), [
    ("OCR this", "k", [ToolName.OCR]), ("copy out the text pls", "k", [ToolName.OCR]),
    ("type out everything on this receipt", "k", [ToolName.OCR]),
    ("what's the total on this?", "k", [ToolName.OCR]),
    ("what does this say, and do we have it?", "k", [ToolName.OCR, ToolName.TEXT_SEARCH, ToolName.IMAGE_SEARCH]),
    ("got this one?", "k", [ToolName.IMAGE_SEARCH]),
    ("what does it say?", "k", [ToolName.OCR]), ("wat does this reciept say", "k", [ToolName.OCR]),
    ("read what the label says", "k", [ToolName.OCR]),
    ("My husband says we never took another picture there. Do I have any others from this spot?", "k",
     [ToolName.IMAGE_SEARCH]),  # what a person says is no text to read
    ("Which vendor issued this one?", "k", [ToolName.OCR]), ("wat shop is this from", "k", [ToolName.OCR]),
    ("whats the name of this japanese place, the saba set was so good", "k", [ToolName.OCR]),
    ("Apa I beli ni? Forgot already", "k", [ToolName.OCR]),  # Malay: what did I buy here? ("already" finds nothing)
    ("what did I buy here?", "k", [ToolName.OCR]), ("do I have this one already?", "k", [ToolName.IMAGE_SEARCH]),
])
def test_an_attached_image_is_read_when_asked_and_searched_otherwise(text: str, image: str, tools: list) -> None:
    assert [step.tool for step in plan(_turn(text, image))] == tools


@pytest.mark.parametrize(("text", "tool", "args"), [
    ("read that one", ToolName.OCR, {"record_id": "r1"}),
    ("what does it look like?", ToolName.CAPTION, {"record_id": "r1"}),
    ("anything else like that?", ToolName.IMAGE_SEARCH, {"record_id": "r1"}),
    ("which one is the cheapest?", ToolName.TEXT_SEARCH, {"query": "aeon", "order_by": "amount", "descending": False}),
    ("only the March ones", ToolName.TEXT_SEARCH,
     {"query": "aeon", "filters": [{"column": "date", "op": "contains", "value": "-03-"}]}),
    ("january only. go", ToolName.TEXT_SEARCH,  # an interjection names nothing new: it narrows
     {"query": "aeon", "filters": [{"column": "date", "op": "contains", "value": "-01-"}]}),
    ("ah just the one from february 2017", ToolName.TEXT_SEARCH,
     {"query": "aeon", "filters": [{"column": "date", "op": ">=", "value": "2017-02-01"},
                                   {"column": "date", "op": "<=", "value": "2017-02-28"}]}),
])
def test_follow_ups_become_the_right_call(text: str, tool: ToolName, args: dict) -> None:
    steps = plan(_turn(text, previous=PREVIOUS))
    assert [step.tool for step in steps] == [tool]
    call = steps[0].args(_turn(text, previous=PREVIOUS))
    assert {key: call[key] for key in args} == args


def test_a_comparison_naming_something_new_is_a_new_search() -> None:
    assert intents.refines("the cheapest aeon one", previous_query="aeon receipts")
    assert not intents.refines("the cheapest aeon one", previous_query="mr diy receipts")
    assert intents.refines("which fill-up cost me the most?", previous_query="shell petrol receipts")


def test_most_of_something_orders_nothing() -> None:
    assert intents.order("he did most of his shopping in Setapak") is None
    assert intents.order("which one cost the most") == intents.Order("amount", True)


def test_a_request_to_find_receipts_is_a_search_whatever_it_mentions() -> None:
    assert intents.unreadable("what is the address of that shop?") == "addresses"
    assert intents.unreadable("so can you find every receipt with a Puchong address on it?") == ""
    assert intents.unreadable("pls give me invoice no for hon hwa hardware") == "receipt numbers"
    assert intents.aggregation("what did i buy between 26 and 31 december 2017? show me all those receipts", True,
                               earlier_results=False) is None


def test_manglish_and_claim_clerk_wording() -> None:
    """Requests as a Malaysian shopper or a claims clerk writes them (agent_unseen6's writers)."""
    assert intents.unreadable("Got resit from that vegetarian restaurant in PJ or not?") == ""  # a search
    assert intents.aggregation("ngl i've been spending way too much on petrol, pull up every shell receipt fr",
                               False) is None  # a request to see receipts, with a name in it
    assert intents.aggregation("can i get a count of every shell receipt i have", False).measure == "count"
    assert intents.refines("Thank you. Of those, please keep only the ones from February 2018.", "teo heng")
    claim = "Claim CLM-2019-0117: claimant submitted purchases dated 25/12/2018. Please retrieve all receipts."
    assert [(c["op"], c["value"]) for c in intents.filters(claim, TODAY)] == [(">=", "2018-12-25"),
                                                                               ("<=", "2018-12-25")]
    third = intents.points_back("State the company registration number shown on the third receipt.", RECORDS,
                                has_image=False)
    assert [r.id for r in third] == ["r3"]
    assert intents.points_back("find the second receipt from aeon in march, I need it for my taxes", RECORDS,
                               has_image=False) == []


@pytest.mark.parametrize("text", [
    "I did a supplies run on 4 December 2017, a few stops I think. Pull every receipt with that date.",
    "I've scrolled through this thing three times already. Just give me everything dated January 2019.",
])
def test_records_named_by_their_date_alone_are_the_filters(text: str) -> None:
    """The story around the day is searched for no word: the filter chooses the records."""
    steps = plan(_turn(text))
    call = steps[0].args(_turn(text))
    assert [step.tool for step in steps] == [ToolName.TEXT_SEARCH] and call["query"] == "records"
    assert {c["column"] for c in call["filters"]} == {"date"}
    assert plan(_turn("the hardware shop receipt from 4 December 2017"))[0].args(_turn(""))["query"] != "records"


@pytest.mark.parametrize("text", ["Filter that to the branches that are inside a Tesco.",
                                  "Aiyo too many lah. Only the Cheras Leisure Mall branch can?"])
def test_a_narrowing_by_words_searches_within_the_shown_records(text: str) -> None:
    steps = plan(_turn(text, previous=PREVIOUS))
    call = steps[0].args(_turn(text, previous=PREVIOUS))
    assert [step.tool for step in steps] == [ToolName.TEXT_SEARCH]
    assert call["filters"] == [{"column": "id", "op": "in", "value": [r.id for r in RECORDS]}]
    assert "Tesco" in call["query"] or "Cheras Leisure Mall" in call["query"]
    assert "aeon" not in call["query"]  # the shown records are the previous search's: its words are not repeated


@pytest.mark.parametrize(("said", "read"), [
    ("berapa resit mr diy ada?", "how many receipts mr diy have?"),
    ("Bila last time I pergi Shell?", "when last time I went to Shell?"),
    ("kedai mana paling banyak", "which shop the most"),
    ("how much in twenty nineteen", "how much in 2019"), ("two thousand and eighteen", "2018"),
    ("twenty twenty-one", "2021"), ("two thousand seven", "2007"),
    ("twenty nine receipts", "twenty nine receipts"),  # a number, not a year
    ("After the end of March 2018, when", "After March 2018, when"),
    ("from 20 march 2018 until the end of that month", "from 20 march 2018 until march 2018"),
    ("since we moved to johor in october 2018 how many", "since october 2018 we moved to johor how many"),
    ("CNY 2018: from 12 feb to 20 feb how many", "CNY 2018: from 12 feb 2018 to 20 feb 2018 how many"),
    ("xmas 2017 ... 25 dec to 1 jan. how many", "xmas 2017 ... 25 dec 2017 to 1 jan. 2018 how many"),
    ("how often at mister d i y", "how often at mr d i y"),
])
def test_manglish_and_spoken_years_are_read_in_plain_words(said: str, read: str) -> None:
    assert in_plain_words(said) == read


@pytest.mark.parametrize("said", [
    "how many receipts from 25 dec to 1 jan 2018",  # the first day in the year before the end's
    "how many receipts between xmas 2017 and new years day??",  # the last day in the year after the first's
    "receipts 25 dec 2017 to 1 jan. 2018, how many",  # a dot after the month: the year is still the span's
    "how many receipts between xmas 2017 and new years day?? 25 dec to 1 jan. was supposed to be a no spend week",
])
def test_a_span_across_new_year_ends_in_the_next_year(said: str) -> None:
    """The month named again beside the span (new year's day is 1 January) adds no condition of its own."""
    assert intents.filters(in_plain_words(said)) == [{"column": "date", "op": ">=", "value": "2017-12-25"},
                                                     {"column": "date", "op": "<=", "value": "2018-01-01"}]


def test_only_the_question_is_read_not_the_reason_after_it() -> None:
    """A story after the question names no shop; a condition after it stays."""
    assert intents.question_part("How much at AEON? I need it for my allowance.") == "How much at AEON?"
    assert intents.question_part("How much did I spend? At AEON, I mean.") == "How much did I spend? At AEON, I mean."
    assert intents.question_part("aeon receipts from 2018") == "aeon receipts from 2018"  # no question: all of it


DATED = [MatchedRecord(id=f"d{n}", file_name=f"{n}.jpg", path=f"/c/{n}.jpg", score=0.9, match=MatchLabel.TEXT_MATCH,
                       why="its printed text matches", metadata={"date": day, "total": total})
         for n, (day, total) in enumerate([("2017-09-21", 40.0), ("2017-02-08", 277.0), ("2018-03-12", 3.5)], 1)]
SHOWN = ToolRun(ToolName.TEXT_SEARCH, {"query": "hon hwa", "k": 10, "filters": []}, "plan_1", {"records": DATED})


@pytest.mark.parametrize(("text", "record"), [
    ("The larger of the two - read me its total for the report.", "d2"),
    ("the cheaper one, what does it say?", "d3"), ("read me the earlier one", "d2"),
    ("the one from February 2017, how much I was paying?", "d2"),  # named by its date, not the first shown
    ("the receipt dated 12 march 2018 - what's the total?", "d3"),
])
def test_a_record_named_by_comparing_or_by_its_date_is_read(text: str, record: str) -> None:
    steps = plan(_turn(text, previous=SHOWN))
    assert [step.tool for step in steps] == [ToolName.OCR]
    assert steps[0].args(_turn(text, previous=SHOWN)) == {"record_id": record}


def test_a_price_asked_of_receipts_is_their_total() -> None:
    """"more than 100 ringgit" after receipts were shown narrows them by the printed total they carry."""
    steps = plan(_turn("which one is more than 100 ringgit?", previous=SHOWN))
    call = steps[0].args(_turn("which one is more than 100 ringgit?", previous=SHOWN))
    assert steps[0].tool is ToolName.TEXT_SEARCH and call["query"] == "hon hwa"
    assert call["filters"] == [{"column": "total", "op": ">", "value": 100.0}]
    assert intents.refines("Thank you. Now I only want the one dated the 12th of January, please.")


def test_a_story_carries_the_subject_when_the_request_names_none() -> None:
    text = ("Good afternoon. My grandson took me out for that Portuguese peri-peri chicken in Mont Kiara, and I am "
            "quite sure I kept the receipt. Would you be so kind as to find it for me? Thank you.")
    assert "peri-peri chicken in Mont Kiara" in intents.search_words(text)
