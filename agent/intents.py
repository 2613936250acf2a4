"""What a user's words ask for: which earlier record, which action, which filter, which order.

The rule-based planner (agent/planner.py) turns these into tool calls. Each
function reads plain words the way people type them, not a command syntax:
"read that one", "the top one - what's on it?", "the last two", "which of
these is the cheapest?", "only the March ones", "copy out the text", "how
much did I spend at Mr DIY?". Every rule here is unit-tested in
tests/test_intents.py; the wording it was checked against is the paraphrase
query set (evals/querysets/agent_paraphrase.jsonl), written by people who did
not read this file.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from loupe.tools.document_fields import MONTHS
from loupe.tools.records import MatchedRecord
from loupe.tools.text_search import CHAT_WORDS, common_words

_ORDINALS = {"first": 1, "1st": 1, "top": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4,
             "fifth": 5, "5th": 5, "sixth": 6, "6th": 6, "seventh": 7, "7th": 7, "eighth": 8, "8th": 8,
             "ninth": 9, "9th": 9, "tenth": 10, "10th": 10, "last": -1, "bottom": -1}
_COUNTS = {"two": 2, "three": 3, "four": 4, "five": 5, "2": 2, "3": 3, "4": 4, "5": 5}
_THING = r"(?:one|ones|result|results|receipt|receipts|resit|picture|pictures|image|images|photo|photos|pic|pics" \
         r"|match|matches|hit|hits|entry|record|item|scan|cover|dvd)"
# "the third receipt", "the second document": a record named by its place, whatever the message asks of it
_ORDINAL_THING = re.compile(rf"\b(?:{'|'.join(_ORDINALS)})\s+(?:{_THING}|documents?|docs?|invoices?|bills?|slips?)\b",
                            re.I)
_EXPLICIT = re.compile(r"#\s?(\d+)|\b(?:number|no\.?|nr\.?|result|item|record|entry)\s?#?(\d+)\b", re.I)
_ORDINAL = re.compile(rf"\b(?:the\s+)?({'|'.join(_ORDINALS)})(?:\s+({'|'.join(_COUNTS)}))?(?:\s+{_THING})?\b", re.I)
_PRONOUN = re.compile(rf"\b(it|that|tht|dat|this|them|those|these|him|her|the same)\b(?:\s+{_THING})?|"
                      rf"\b(?:that|tht|this|the)\s+{_THING}\b|"
                      r"\b(?:spen[dt]|paid|pay|bought|buy|got|get)\s+there\b",  # "how much did we spend there?"
                      re.I)

TEXT = re.compile(r"\b(read|reading|transcribe|transcription|transcript|ocr|copy|extract|text|written|"
                  r"writing|wording|words|printed|print|type (?:it |this |that )?out|write (?:it |this |that )?out|"
                  r"line by line)\b|\bwhat'?s on\b|\bwhats on\b|\bwhat is on\b|"
                  # what a thing says, not what a person says ("my husband says we never ...")
                  r"\b(?:it|this|that|does|do|did|what|what's|whats|they|receipt|label|sign|slip|one|cover|box)\s+"
                  r"(?:[\w']+\s+)?(?:says?|said)\b", re.I)  # "wat does this reciept say"
MORE = re.compile(r"\b(more like|similar|like (?:this|that|it|the|#)|looks? like|others like|anything else|"
                  r"something else|same (?:kind|place|sort|scene|spot|thing)|other (?:pictures|photos|images|shots|"
                  r"pics|ones) (?:of|like)|alike|resembl\w*)\b", re.I)
CAPTION = re.compile(r"\b(describe|description|caption|what (?:is|'s) (?:in|shown)|what'?s in|whats in|"
                     r"what (?:does|do) (?:it|this|that|they|the \w+) look like|"
                     r"what does (?:it|this|that) show|what (?:is|'s) (?:it|this|that) (?:of|showing)|"
                     r"what is (?:it|this|that)\b(?! (?:from|dated|for)))", re.I)
ASKS_TOTAL = re.compile(r"\b(how much|total|totl|ttl|amount|amt|payable|due|spen[dt]|cost|costs|price|paid|pay|sum)\b",
                        re.I)
# The shop or company a receipt is from: "which vendor issued this one?", "wat shop is this from"
ASKS_SHOP = re.compile(r"\b(?:which|what|wat|whats|what's)\s+(?:shop|store|vendor|merchant|seller|company|restaurant|"
                       r"outlet|business|supplier)\b|\bwho (?:issued|sold|made out)\b|"
                       r"\b(?:shop|store|vendor|company|merchant|supplier)(?:'s)? name\b|"
                       r"\bname of (?:this|that|the|these)\b", re.I)  # "the name of this japanese place"
# What was bought, asked of an attached receipt, is read from it: "what did I buy here?", "Apa I beli ni?" (Malay)
ASKS_BOUGHT = re.compile(r"\bwhat (?:did|do|have) (?:i|we) (?:buy|bought|get|got|order|ordered|purchase)\b|"
                         r"\bapa (?:i|saya|aku) beli\b", re.I)
ASKS_DATE = re.compile(r"\b(when|date|dated|what day|which day)\b", re.I)
FIND = re.compile(r"\b(do (?:we|i|you) have|have (?:we|i) got|in (?:my|the) (?:collection|library|photos|files)|"
                  r"(?:have|got|it|this|that|one|them)\s+already|already\s+(?:have|got|own|in)|anywhere|find|"
                  r"search|look (?:for|up)|match(?:es|ing)?|other cop(?:y|ies)|duplicates?)\b",
                  re.I)


@dataclass(frozen=True)
class Order:
    """Results ordered by a stored column: ``amount`` is the price, else the printed total."""

    column: str  # "amount" or "date"
    descending: bool

    def to_dict(self) -> dict[str, Any]:
        return {"order_by": self.column, "descending": self.descending}

    def words(self) -> str:
        if self.column == "amount":
            return "the most expensive first" if self.descending else "the cheapest first"
        return "the newest first" if self.descending else "the oldest first"


_ORDERS = [  # dates first: "most recent" is no amount
    (re.compile(r"\b(newest|newer|latest|later|most recent|more recent|recent-?most|youngest)\b", re.I),
     Order("date", True)),
    (re.compile(r"\b(oldest|older|earliest|earlier|least recent)\b", re.I), Order("date", False)),
    (re.compile(r"\b(cheapest|most cheap|least expensive|least costly|lowest|smallest|cheaper|less expensive|least)\b",
                re.I),
     Order("amount", False)),
    (re.compile(r"\b(most expensive|priciest|dearest|highest|biggest|largest|costliest|most costly|pricier|"
                r"more expensive|max(?:imum)?|(?:the )?most)\b(?!\s+of\b)", re.I), Order("amount", True)),
]

# Month names as people misspell them when typing fast; each maps to the month it means.
_MISSPELT_MONTHS = {"janurary": 1, "januray": 1, "janaury": 1, "febuary": 2, "feburary": 2, "febrary": 2,
                    "februrary": 2, "marhc": 3, "apirl": 4, "agust": 8, "augst": 8, "septmber": 9, "setpember": 9,
                    "ocotber": 10, "octobre": 10, "novmber": 11, "novemeber": 11, "decmber": 12, "decemeber": 12}
_MONTH = "|".join(sorted([m for m in MONTHS if m != "may"] + list(_MISSPELT_MONTHS), key=len, reverse=True))
# "may" is a month only where no verb reading fits: "in May", "May 2018", "the May ones".
_MONTH_YEAR = re.compile(rf"\b({_MONTH}|may)\.?\s*(?:of\s+|,\s*)?((?:19|20)\d\d)\b", re.I)
# A span within one year: "oct to dec 2017", "between 1 and 15 march 2018", "from the 3rd to the 9th of May 2018".
_SPAN = re.compile(rf"\b(?:(?:from|between)\s+)?(?:the\s+)?(?:(?P<first_day>\d{{1,2}})(?:st|nd|rd|th)?|"
                   rf"(?P<first_month>{_MONTH}|may))\s*(?P<link>to|till|until|through|and|-|vs\.?|versus|or)\s*"
                   rf"(?:the\s+)?(?:(?P<last_day>\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+)?"
                   rf"(?P<last_month>{_MONTH}|may)\.?\s*,?\s*(?P<year>(?:19|20)\d\d)\b", re.I)
# A month as digits: "02/2018", "3-2018"
_NUMERIC_MONTH_YEAR = re.compile(r"(?<![\d/.\-])(0?[1-9]|1[0-2])[/.\-]((?:19|20)\d\d)(?![\d/.\-])")
# A half of a year: "the first half of 2018", "H2 2017"
_HALF = re.compile(r"\b(?:the\s+)?(first|1st|second|2nd|last)\s+half\s+(?:of\s+)?((?:19|20)\d\d)\b|"
                   r"\bh([12])\s*(?:of\s+)?((?:19|20)\d\d)\b", re.I)
_VERSUS = re.compile(r"vs\.?|versus|or", re.I)  # "jan vs feb 2018" compares two months: a span only if adjacent
# A quarter of a year: "Q3 2017", "the last quarter of 2018", "4th quarter 2017".
_QUARTERS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "last": 4,
             "final": 4}
_QUARTER = re.compile(rf"\bq([1-4])\s*(?:of\s+|,\s*)?((?:19|20)\d\d)\b|"
                      rf"\b(?:the\s+)?({'|'.join(_QUARTERS)})\s+(?:quarter|three months)\s+(?:of\s+)?((?:19|20)\d\d)\b",
                      re.I)
# From a day or a month on, or up to one: "since march 2018", "before 1 feb 2018", "from 15 march 2018 onwards"
# ("from" says "on" only with "onwards": "receipts from march 2018" are March's).
_DAY_AND_MONTH = rf"(?:the\s+)?(?:(\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+)?({_MONTH}|may)\.?"
_DAY = rf"{_DAY_AND_MONTH}\s*,?\s*((?:19|20)\d\d)\b"
# A half of a month ("the second half of march 2018": the 16th on) and the week from a day ("the week of 19
# march 2018": that day and the six after it)
_HALF_MONTH = re.compile(rf"\b(?:the\s+)?(first|1st|second|2nd|last)\s+half\s+(?:of\s+)?({_MONTH}|may)\.?\s*,?\s*"
                         rf"((?:19|20)\d\d)\b", re.I)
_WEEK_OF = re.compile(rf"\b(?:the\s+)?week\s+(?:of|from|starting(?:\s+on)?|beginning)\s+{_DAY}", re.I)
# The first to fourth week of a month (days 1-7, 8-14, ...), or its last (its last seven days)
_WEEKS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4, "last": 5,
          "final": 5}
_NTH_WEEK = re.compile(rf"\b(?:the\s+)?({'|'.join(_WEEKS)})\s+week\s+(?:of|in)\s+({_MONTH}|may)\.?\s*,?\s*"
                       rf"((?:19|20)\d\d)\b(?:\s*\([^()]*\))?", re.I)
# Two whole dates: "between 1 October 2018 and 31 December 2018", "from 5 jan 2018 to feb 2018"; the first may
# leave its year to the second ("between 26 december and 31 december 2017").
_FIRST_DAY = rf"{_DAY_AND_MONTH}(?:\s*,?\s*((?:19|20)\d\d)\b)?"
_DAY_SPAN = re.compile(rf"\b(?:(?:from|between)\s+)?{_FIRST_DAY}\s*(?:to|till|until|through|and|-)\s*{_DAY}", re.I)
# One day: "dated 4/12/2017" (day first, as receipts print it, unless the second number is over 12), "on 15
# march 2018", "march 15th, 2018"; without a year ("the 15th jan one") that day in any year.
_NUMERIC_DAY = re.compile(r"(?<![\d/.\-])(\d{1,2})[/.\-](\d{1,2})[/.\-]((?:19|20)?\d\d)(?![\d/\-]|\.\d)")
_OF_YEAR = r"(?:\s*,?\s*((?:19|20)\d\d)\b)?"
_DAY_MONTH = re.compile(rf"\b(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+({_MONTH}|may)\b\.?{_OF_YEAR}|"
                        rf"\b({_MONTH}|may)\.?\s+(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\b(?![.,:]\d){_OF_YEAR}", re.I)
# Days people name rather than number, read as the day they fall on
_NAMED_DAYS = [(re.compile(pattern, re.I), day) for pattern, day in (
    (r"\bchristmas eve\b|\bxmas eve\b", "24 december"), (r"\b(?:christmas|xmas)(?: day)?\b", "25 december"),
    (r"\bboxing day\b", "26 december"), (r"\bnew year'?s eve\b", "31 december"),
    (r"\bnew year'?s(?: day)?\b", "1 january"), (r"\bvalentine'?s(?: day)?\b", "14 february"))]
# Days of the month written as words: "the fourth of December 2017", "march the twenty-first"
_UNITS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth"]
_DAY_WORDS = {**{word: n + 1 for n, word in enumerate(_UNITS)},
              **{word: 10 + n for n, word in enumerate(["tenth", "eleventh", "twelfth", "thirteenth", "fourteenth",
                                                        "fifteenth", "sixteenth", "seventeenth", "eighteenth",
                                                        "nineteenth", "twentieth"])},
              **{f"twenty{dash}{word}": 21 + n for n, word in enumerate(_UNITS) for dash in ("-", " ", "")},
              "thirtieth": 30, **{f"thirty{dash}first": 31 for dash in ("-", " ", "")}}
_DAY_WORD = "|".join(sorted(_DAY_WORDS, key=len, reverse=True))
_WORDED_DAY = re.compile(rf"\b({_DAY_WORD})(?=\s+(?:of\s+)?(?:{_MONTH}|may)\b)|"
                         rf"\b((?:{_MONTH}|may)\.?\s+(?:the\s+)?)({_DAY_WORD})\b", re.I)
_ONWARDS = r"\s+(?:on|onwards?|forwards?|and later|or later)\b"
_OPEN_SPAN = re.compile(rf"\b(since|on or after|after|starting(?:\s+from)?|until|till|on or before|before|up\s+to|"
                        rf"from(?=[\w\s]*?{_ONWARDS}))\s+{_DAY}"
                        rf"(?:{_ONWARDS})?", re.I)
_MONTH_ALONE = re.compile(rf"\b({_MONTH})\b\.?|\b(?:in|from|during|of|the)\s+(may)\b", re.I)
_YEAR = re.compile(r"(?<![\d.,])(?<![A-Za-z]-)((?:19|20)\d\d)(?![\d.,]\d)")  # not of a code: "CLM-2019-0117"
_RELATIVE_YEAR = re.compile(r"\b(last|this|previous|past)\s+year\b", re.I)
_PRICE_BELOW = re.compile(r"\b(?:under|below|less than|cheaper than)\s*(?:rm|\$|€|£)?\s*(\d+(?:[.,]\d+)?)", re.I)
_PRICE_ABOVE = re.compile(r"\b(?:over|above|more than)\s*(?:rm|\$|€|£)?\s*(\d+(?:[.,]\d+)?)", re.I)
# A receipt's printed total named exactly: "the total is 5.90", "came to RM 12.50", "totalling 31.00"
_TOTAL_IS = re.compile(r"\b(?:(?:grand\s+)?total(?:l?ed|l?ing)?|came to|comes? to|amount(?:ed|ing|s)? to)\s*"
                       r"(?:is|was|of|=|:)?\s*(?:exactly\s+)?(?:rm|myr|\$|€|£)?\s*(\d+[.,]\d\d)\b", re.I)
_HAS_PRICE = re.compile(r"\b(with|having|has|that have|carrying) (?:a )?price", re.I)
_SCREENSHOTS = re.compile(r"\bscreen ?shots?\b", re.I)
SCREENSHOT_NAMES = ("screenshot", "screen shot")

# Words that carry no subject: what is left of "hmm, just the ones from february" once the date is taken
# out, or of "which of these is the cheapest?" once the order is.
_EMPTY_WORDS = set("""
a an the and or but of in on at to for from by with about as is are was were be do does did it its this that these
those them they ones one only just now then so ok okay okey hmm hm um well please pls thanks what which who how
about show me give list keep drop exclude remove without hide filter narrow instead rather also same again
receipts receipt bills bill photos pictures images pics results ones dated date made taken bought i my we our
you any anything there here out of among thos tho tell can could would will should shall let see
narrow ah oh uh er yeah yes yep go hey hi hello yo lol haha hehe omg btw actually
cost costs costing price priced prices paid spent spend pay expensive cheap amount total money
all every each some something thing things stuff pull think find look looking search searching get
shop store place
kind thank able possible help assist supporting relevant corresponding related original want need paying pay ringgit rm
myr dollars bucks
""".split()) | CHAT_WORDS  # the last two lines: a request's politeness and the money it names in passing
_WORD = re.compile(r"[\w'-]+")
_ABOUT_THESE = re.compile(r"^\s*(which|what|who|and|so|ok)\b|\b(these|those|them|the ones|of the)\b", re.I)
_REFINE_START = re.compile(r"^\s*(?:(?:hmm+|hm+|um+|uh|ok(?:ay)?|so|oh|ah|well|actually|no|nah|cool|nice|wait|hold on|"
                           r"sorry|oops|now)[\s,.!]+)*(?:(?:of|from) (?:those|these|them)[\s,]+(?:i\s+)?)?"
                           r"(?:(?:please|pls|kindly)\s+)?(?:i\s+(?=(?:only|just)\s+(?:want|need)))?"
                           r"(only|just|but only|now only|drop|exclude|remove|without|hide|keep only|filter|"
                           r"narrow|restrict|limit|cut (?:it|that|them|those|this) down|and|what about|"
                           r"how about)\b", re.I)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# A sentence after a question that adds to it rather than tells why: "At AEON, I mean.", "Only the 2018 ones."
_ADDS_CONDITION = re.compile(r"^\s*(?:i mean|at|from|in|on|only|just|not|excluding|except|since|before|after|between|"
                             r"during|for)\b", re.I)
_FILLER = [re.compile(p, re.I) for p in (
    r"^\s*(?:hey|hi|hello|ok|okay|um+|hmm+|so|yo)\b[\s,!.]*",
    r"^\s*quick (?:one|question|q)\b[\s,:!.-]*",
    r"\b(?:please|pls|plz|kindly|thanks|thank you|thx|asap|right now|now)\b[\s,!.]*",
    r"^\s*(?:can|could|would|will) (?:you|u)\s+(?:please\s+)?(?:help me\s+)?",
    r"^\s*(?:i(?:'m| am)|im)\s+(?:looking|searching|trying to find|trying to locate)\s+(?:for\s+)?",
    r"^\s*i\s+(?:need|want|would like|wanna|'d like)\s+(?:to\s+(?:find|see|get)\s+)?",
    r"^\s*(?:find|show|get|pull up|look up|dig up|bring up|search(?: for)?|look for|locate|fetch|give)(?: me)?\s+",
    r"^\s*(?:where(?:'s| is| are)|wheres|do (?:we|you|i) (?:have|still have)|is there|are there|have i got|got)\s+",
    r"^\s*(?:any|all|the|a|an|my|our|that|those|these)\s+",
    # a count guessed in passing says how many, not what: "maybe two things", "a couple of them"
    r"\b(?:maybe\s+|about\s+|like\s+)?(?:two|three|four|five|a few|a couple(?: of)?|several)\s+"
    r"(?:things|items|ones|times|of them)\b",
    # a reason given after a comma says why, not what: "mr diy receipts, I'm trying to see how much I spent"
    r",\s*(?:i'm|i am|im|i want|i need|i wanna|because|cause|cos|since|as i|so i|for my)\b.*$",
)]


# Questions about the whole collection (tools/aggregate.py): how many, how much in all, the most, the last time.
_COUNT = re.compile(r"\b(?:how|hw)\s+(?:many|mny)\b|\bnumber of\b|\bno\.? of\b|\bhow often\b|"
                    r"\bcount (?:my|the|all|of)\b", re.I)
_MONEY = re.compile(r"\b(how much|spen[dt]|spnd|spending|total|sum|paid|pay|blow|blew|blown|money|damage|costs?|"
                    r"add(?:ed|s)? (?:it )?up|c[oa]mes? to)\b", re.I)
_MANY = re.compile(r"\b(altogether|all together|in total|overall|so far|combined|sum of|all (?:my|the)|in all|"
                   r"every\w*|evrywhere|total (?:spen[dt]|spending|for|of))\b", re.I)
_TIMES = re.compile(r"\bwhen(?:'?s)?\b|\bwhat (?:date|day)\b|\bdate of\b|\b(?:last|first) time\b", re.I)
_LATEST = re.compile(r"\b(last|latest|most recent|recent(?:ly)?|newest)\b", re.I)
_EARLIEST = re.compile(r"\b(first|1st|frist|fisrt|earliest|oldest)\b", re.I)
# "the earliest receipt in Q4 2017", "my first visit to popular": a date asked without "when"
_FIRST_OR_LAST_ONE = re.compile(r"\b(first|frist|fisrt|earliest|oldest|last|latest|most recent|newest)\s+"
                                r"(?:[\w'-]+\s+)?"
                                r"(?:receipts?|reciepts?|resits?|bills?|visits?|trips?|purchases?)\b", re.I)
# "the most I've ever blown on one receipt", "the least we paid"
_I_PAID = r"(?:that )?(?:i|we)(?:'ve|ve|'d| have| had)? (?:ever )?(?:paid|spent|spend|blown|blew|dropped)"
_MOST = re.compile(rf"\b(biggest|largest|highest|priciest|dearest|most expensive|most {_I_PAID}|"
                   r"top[- ]priced)\b", re.I)
# Questions about the single items a receipt prints (tools/receipt_items.py): "the most expensive thing I bought",
# "what did I buy at IKEA?", "how many products from AEON"; a "thing" or "stuff" only where it was bought.
_ITEMS = re.compile(r"\b(?:items?|products?|dish(?:es)?|goods)\b|\blines? of\b|"
                    r"\b(?:things?|stuff)\b.*\b(?:bought|buy|got|get|ordered|order|"
                    r"purchased)\b|\bwhat (?:did|do|have) (?:i|we) (?:buy|bought|get|got|order|ordered|purchase)\b",
                    re.I)
_LEAST = re.compile(rf"\b(smallest|lowest|cheapest|least expensive|least {_I_PAID})\b", re.I)
_OF_MANY = re.compile(r"\b(receipts?|reciepts?|recipts?|receits?|resits?|bills?|amount|total|paid|ever|i have|i've got|"
                      r"ive got|i got|trips?|visits?|purchases?|spen[dt])\b", re.I)
_GROUP = re.compile(r"\b(?:(?:which|what)\s+(shop|store|place|outlet|merchant|vendor|seller|month|year|yr)|"
                    # "Month with the highest MR DIY spend", "the shop with the most receipts"
                    r"(month|year|shop|store)\s+(?:with|where|of)\s+(?:the\s+)?(?:highest|most|biggest|largest|top|"
                    r"lowest|least|fewest)\b|"
                    r"(?:per|by|each|every)\s+(shop|store|vendor|month|year)|at one (shop|store|place)|where do i|"
                    r"(busiest) month)", re.I)
_GROUP_NAMES = {"store": "shop", "place": "shop", "outlet": "shop", "merchant": "shop", "vendor": "shop",
                "seller": "shop", "busiest": "month", "yr": "year"}
_SPENDING = re.compile(r"\b(spen[dt]|spending|money|paid|pay|expensive|cost)\b", re.I)
_THESE = re.compile(r"\b(these|those|them|the ones|of the)\b", re.I)
_SHOWS = re.compile(r"^\s*(?:(?:can|could) you\s+)?(?:please\s+|pls\s+)?(?:pull up|show|find|get me|list|look up|"
                    r"dig up|bring up|search|fetch|give me)\b", re.I)
# A request to see receipts, anywhere in the message: "my wife would like to see every receipt from that day",
# "pull up every shell receipt", "got resit from that shop or not?" (Manglish), but not "show me the total of ..."
_LISTS_RECEIPTS = re.compile(r"\b(?:see|show|find|pull(?: up| out)?|dig(?: up| out)?|bring up|list|gather|fetch|get|"
                             r"give|got)\s+(?:me\s+|us\s+)?(?:(?:all|every|each|both|the|those|these|my|our|of)\s+)*"
                             r"(?:(?!(?:total|sum|number|count|amount|average|how|many|much|most|more|least|fewest|fewer)\b)[\w'.&-]+\s+){0,3}?"
                             r"(?:receipts?|reciepts?|recipts?|resits?|bills?|invoices?)\b"
                             r"(?!\s*(?:no\b|nos\b|numbers?|#))", re.I)  # "give me invoice no" asks for a field
_AMOUNT = re.compile(r"\d+[.,]\d\d\b")
_REASON = re.compile(_FILLER[-1].pattern, re.I)
_GREETING = re.compile(r"^\s*(?:(?:hello|hi|hey|dear|good (?:morning|afternoon|evening|day))\b[\w ]{0,20}?[,!.]\s*)+",
                       re.I)
_ADDS_UP = re.compile(r"\b(?:add(?:ed|s)?|sum|total)\b.*\bprices?\b|\badd(?:ed|s)? (?:\w+ )?up\b", re.I)
# Words of a question about the collection that name no shop: what is left once they are gone is the shop.
_QUESTION_WORDS = set("""
how hw many much number no count often times time when when's whens whats what's where wheres where's which
what who date day
last latest recent recently newest first earliest oldest most least biggest largest highest priciest dearest
smallest lowest cheapest expensive busiest ever altogether together total totals overall far combined sum all
every everywhere evrywhere spend spent spending blow blew blown went go going gone been visit visited visits
shop shops shopped shopping store stores place places station outlet merchant trip trips buy bought something
stuff fill up paid pay money month months year years receipt receipts reciepts recipts resit bills bill have
has got get i've ive i'd did do does was were is are at from to in on for by per each gets much
spnd mny hv hve cash drop dropped damage add added adds come comes came make made keep kept had r everything grand
purchase purchases vs versus more fewer less
item items product products thing things single individual one across diff different distinct unique
priced top order ordered purchased dish dishes line lines listed branch branches collection library quick
good morning afternoon evening kindly kind grateful if whole over counting thank very wat wat's wats half dated
between overall amounts reciept recipt receit receits invoice invoices record records file files greatest fewest
their his her its your assistant
like know knowing wondering wonder need needing want wanted looking look only just put collect collected
through thru week weeks weekend monday tuesday wednesday thursday friday saturday sunday second
vendor vendors seller sellers shops accounts yr yrs hit adding including inclusive i.e e.g not um uh like lol asap
called named both together frist fisrt
""".split())
_DAY_OF_MONTH = re.compile(r"\d{1,2}(?:st|nd|rd|th)", re.I)  # "16th to 31st": the span's, never a shop's
_SHOP_WORD = re.compile(r"[\w'&-]+(?:\.[\w&-]+)*\.?")
_ASIDE = re.compile(r"\([^()]*\)")  # "ikano handel (the ikea one)": what the brackets add names no shop
# The verb after "did I", "have we": "how many receipts did I rack up", "how many times did I end up going"
_DID_I_VERB = re.compile(r"\b(?:did|do|does|have|had|will|would|can|could)\s+(?:i|we|you|u)\s+"
                         r"(?:ever\s+|actually\s+|really\s+)?[\w']+", re.I)
_LEAD_IN = re.compile(r"^\s*((?:[\w']+\s+){0,5}[\w']+)\s*,\s*(?=(?:how|hw|what|whats|when|which|can|could|tell)\b)",
                      re.I)
_SPELLED_OUT = re.compile(r"\b(?:[A-Za-z] ){2,}[A-Za-z]\b")  # a name said letter by letter: "d i y"
# "all branches, Kuchai, Johor, whichever", "from any of their branches": every branch, so no branch is a condition
_ANY_BRANCH = re.compile(r"\b(?:all|any|every|whichever)\s+(?:of\s+(?:their|the|its)\s+)?(?:branch|branches|outlets?|"
                         r"locations?)\b[^.?!]*", re.I)
# Where the question itself starts: "... at the start of the school year, and I should like to know how many
# receipts I have from the Popular bookshop": the shop after it, not the "at" before it
_QUESTION_START = re.compile(r"\b(?:how|hw)\s+(?:many|mny|much|often)\b|\bnumber of\b|\bwhen\b|\bwhich\b|"
                             r"\btotal\b|\bwhat\b", re.I)
# a shop after "at", "from" or "issued by", up to the question's end: "at Mr. DIY? any branch"
_AT_SHOP = re.compile(r"\b(?:at|from|(?:issued|sold|printed|made out|billed) by)\s+([^?!;,]+)", re.I)


@dataclass(frozen=True)
class Aggregation:
    """A question about many records at once, as the aggregate tool's arguments (see agent/tools.py)."""

    measure: str  # count, sum, min, max, latest, earliest
    shop: str = ""  # the shop's name as typed ("" for every record)
    group_by: str = ""  # shop, month or year ("" for one figure)
    maybe_one: bool = False  # "how much did I spend at X?": a sum, or one receipt's total if X has only one
    items: bool = False  # over the item lines the receipts print, not the receipts

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, **({"shop": self.shop} if self.shop else {}),
                **({"group_by": self.group_by} if self.group_by else {}), **({"items": True} if self.items else {})}


def asks_about_items(text: str) -> bool:
    """The request is about the single items bought ("the priciest thing I bought"), not about receipts."""
    return bool(_ITEMS.search(text))


def question_part(text: str) -> str:
    """The message up to its last question: what follows is a reason or a story ("... in February 2018? I need to
    compare it against my allowance"), whose words name no shop and ask for nothing; a following sentence that
    adds a condition ("At AEON, I mean.", "Only 2018.") stays."""
    sentences = _SENTENCE_END.split(text.strip())
    asked = [i for i, sentence in enumerate(sentences) if _QUESTION.search(sentence)]
    if not asked:
        return text
    rest = [sentence for sentence in sentences[asked[-1] + 1:] if _ADDS_CONDITION.search(sentence)]
    return " ".join(sentences[:asked[-1] + 1] + rest)


def aggregation(text: str, dated: bool, earlier_results: bool = True) -> Aggregation | None:
    """The collection question in ``text`` ("how much did I spend at AEON in 2018?", "when did I last go to
    Shell?", "which shop do I spend the most at?"), or None for a search or a question about earlier results.

    ``dated``: the message names a date, month or year. A sum with a sign that it spans many receipts (a
    date, "altogether", "in total", "all my") is one; without one, a sum at a shop is ``maybe_one``: "how much
    did I spend at AEON?" adds up five receipts, "how much did we spend at Nando's that night?" asks for one
    receipt's total, which text search finds and reads. "show me / pull up ..." asks for the receipts.

    ``earlier_results``: the conversation has shown records, which "those" or "these" may point back at;
    before any, "Hon Hwa Hardware: the dearest item on those bills" means the bills of the shop it names.
    """
    if _LISTS_RECEIPTS.search(text):
        return None  # "what did i buy after christmas 2017? show me all those receipts" asks for the receipts
    words = _REASON.sub("", _GREETING.sub("", question_part(text)))  # "Hello, I am needing to know ..."
    if (_THESE.search(words) and earlier_results) or _AMOUNT.search(words):
        return None
    if asks_about_items(words) and not _GROUP.search(words):
        measure = "max" if _MOST.search(words) else "min" if _LEAST.search(words) else \
            "sum" if (_SPENDING.search(words) or _ADDS_UP.search(words)) and not _COUNT.search(words) else "count"
        return Aggregation(measure, shop_words(words), items=True)
    if group := _GROUP.search(words):
        name = next(g for g in group.groups() if g) if any(group.groups()) else "shop"
        measure = "sum" if _SPENDING.search(words) and not _COUNT.search(words) else "count"
        return Aggregation(measure, shop_words(words), _GROUP_NAMES.get(name.lower(), name.lower()))
    undated = _RELATIVE_YEAR.sub(" ", words)
    if _COUNT.search(words):
        return Aggregation("count", shop_words(words))
    if _TIMES.search(undated) and (_LATEST.search(undated) or _EARLIEST.search(undated)):
        return Aggregation("earliest" if _EARLIEST.search(undated) else "latest", shop_words(words))
    if _SHOWS.search(words):
        return None
    if first_or_last := _FIRST_OR_LAST_ONE.search(undated):
        earliest = _EARLIEST.search(first_or_last.group(1))
        return Aggregation("earliest" if earliest else "latest", shop_words(words))
    if (_MOST.search(words) or _LEAST.search(words)) and _OF_MANY.search(words):
        return Aggregation("max" if _MOST.search(words) else "min", shop_words(words))
    if not _MONEY.search(words):
        return None
    if dated or _MANY.search(words):
        return Aggregation("sum", shop_words(words))
    shop = shop_words(words)
    return Aggregation("sum", shop, maybe_one=True) if shop else None


def shop_words(text: str) -> str:
    """The shop a collection question names: its words without the question's own, the dates and the filler
    ("how many receipts do I have from MR D.I.Y.?" -> "MR D.I.Y"); "" when none is left. Where a shop follows
    "at", "from" or "issued by", only the words after it: "the dearest book thing I bought from Popular" ->
    "Popular". The verb after "did I" ("did I rack up") and a lead-in of ordinary words are never a shop."""
    text = _SPELLED_OUT.sub(lambda m: m[0].replace(" ", ""), _ANY_BRANCH.sub(" ", text))  # "mr d i y" is "mr diy"
    unconditioned = _DID_I_VERB.sub(" ", _ASIDE.sub(" ", _without_lead_in(_strip_conditions(text))))
    asked = _QUESTION_START.search(unconditioned)  # the shop named after the question's own words, where one is
    after = _AT_SHOP.search(unconditioned, asked.end() if asked else 0) or _AT_SHOP.search(unconditioned)
    return next(filter(None, (_named(part) for part in ([after.group(1)] if after else []) + [unconditioned])), "")


def names_a_shop(text: str, shop: str) -> bool:
    """The words read as ``shop`` are said as a shop's name: after "at", "from", "by" or "went to", or before
    "receipts" ("how many starbucks receipts"), not left over from a story ("running around like mad")."""
    words = shop.split()
    if not words:
        return False
    first, last = re.escape(words[0]), re.escape(words[-1])
    return bool(re.search(rf"\b(?:at|from|by|kat|dekat|(?:go|goes|went|gone|been|going|trips?|visits?|visited)\s+to)"
                          rf"\s+(?:the\s+)?{first}\b", text, re.I)
                or re.search(rf"\b{last}(?:'s)?\s+(?:receipts?|reciepts?|resits?|bills?|invoices?|visits?|trips?|"
                             rf"purchases?)\b", text, re.I))


def only_ordinary_words(shop: str) -> bool:
    """Every word is a common English or a chat word: words of a sentence, unless said as a shop's name."""
    return all(word.lower() in common_words() or word.lower() in CHAT_WORDS for word in _WORD.findall(shop))


def _without_lead_in(text: str) -> str:
    """The question without a lead-in of ordinary words before it ("Okay real talk, how many receipts ..."); a
    lead-in that is a name stays ("Uni Hakka, how many receipts?")."""
    lead = _LEAD_IN.match(text)
    if lead and all(word.lower() in common_words() for word in _WORD.findall(lead.group(1))):
        return text[lead.end():]
    return text


def _named(text: str) -> str:
    words = [w.rstrip(".") for w in _SHOP_WORD.findall(text)]
    return " ".join(w for w in words if any(ch.isalnum() for ch in w) and not _DAY_OF_MONTH.fullmatch(w)
                    and w.lower() not in _EMPTY_WORDS and w.lower() not in _QUESTION_WORDS)


# What a receipt prints that Loupe does not read into a field: asked about, it says so rather than guess.
_UNREADABLE = [(re.compile(pattern, re.I), what) for pattern, what in (
    (r"\bhow (?:many|much) (?!receipts?\b|reciepts?\b|recipts?\b|times\b|bills?\b|visits?\b|trips?\b|money\b|"
     r"items?\b|products?\b|things?\b|stuff\b|diff|different)[\w ]{1,30}? did (?:i|we) "
     r"(?:buy|get|order|eat|drink|use)\b", "quantities"),
    (r"\b(?:weight|weigh|grams?|kilos?)\b", "weights"),
    (r"\b(?:opens?|opening|closes?|closing)\b.*\b(?:time|hours?|\w+days?)\b|\bopening hours\b", "opening hours"),
    (r"\b(?:what|wat|wot) time\b|\btime of (?:the )?day\b|\bwhat hour\b", "times of day"),
    (r"\bweather\b|\brain(?:s|ed|ing|y)?\b", "the weather"),
    (r"\b(?:what|which|wat) table\b|\btable (?:number|no)\b", "table numbers"),
    (r"\baddress(?:es)?\b|\bstreet\b|\blocated\b|\blocation\b|\bwhere (?:the|that|this) [\w' ]{1,30}? (?:is|was)\b",
     "addresses"),
    (r"\bkind of (?:food|cuisine)\b|\bcuisine\b|\bserves?\b", "what a shop serves"),
    (r"\b(?:phone|tel|contact|fax)\s*(?:number|no\b)|\btelephone\b|\bphone (?:for|of)\b", "phone numbers"),
    (r"\b(?:receipt|invoice|bill|doc(?:ument)?|order|transaction)\s*(?:number|no\b|#)", "receipt numbers"),
    (r"\b(?:country|countries|origin|made in)\b", "where things were made"),
    (r"\bon sale\b|\bshelf price\b|\busual price\b", "discounts"),
    (r"\bcalories?\b|\bnutrition", "calories"),
    (r"\b(?:gst|sst|vat|tax(?:es)?)\b", "taxes"),
    (r"\b(?:by|with|in) (?:card|cash|visa|mastercard|credit|debit)\b|\bpayment (?:methods?|cards?|types?)\b|"
     r"\bwhich card\b|\b(?:cash|card) or (?:card|cash)\b", "how it was paid"),
    (r"\bchange (?:did|was|do)\b|\bmy change\b", "the change given"),
    (r"\b(?:cashier|waiter|waitress|served)\b", "who served"),
    (r"\bdiscounts?\b|\b(?:how much|what) (?:\w+ ){0,4}saved?\b|\bsavings? (?:on|at|from)\b", "discounts"),
    (r"\b(?:loyalty|reward|rewards|bonus|member(?:ship)?)\s+points?\b|\bpoints (?:did|have) (?:i|we)\b",
     "loyalty points"),
    (r"\b(?:member(?:ship)?|loyalty|card)\s*(?:card\s*)?(?:number|no\b|#|id\b)|\bdigits of\b", "card numbers"),
    (r"\b(?:halal|vegan|vegetarian|kosher|organic|gluten)\b", "dietary labels"),
    (r"\btips?\b", "tips"),
    (r"\bservice charge", "service charges"),
    (r"\b(?:average|mean)\b", "averages"),
    # what happened around a purchase, which no receipt records
    (r"\bwho (?:did|was|were|came|went|joined|else)\b(?!\s+(?:issue|sell|sold|print|make out))|\bwith whom\b",
     "who was with you"),
    (r"\bpa(?:y|id) (?:me|us|you|him|her|them|my \w+) back\b|\bowe[ds]?\b", "who paid back whom"),
    (r"\bhow long\b(?! ago\b)", "how long anything took"),
    (r"\benjoy(?:s|ed|ing)?\b|\bdid (?:he|she|they|you|we|i|my \w+) (?:like|love)\b", "what anyone thought of it"),
    (r"\bparking\b", "parking"),
    (r"\bwhy (?:did |do |was |were )?(?:i|we)\b|\b(?:what|which) (?:was |is )?the (?:occasion|reason)\b",
     "why you went"),
    (r"\breimburs\w*|\bclaimed back\b", "what was paid back to you"),
    (r"\b(?:ratings?|rated|stars|(?:google|online|customer) reviews?|review (?:scores?|ratings?))\b",
     "ratings and reviews"),
)]
# A question, or a request for a fact ("can you tell me ...", "pls give me the invoice no for ...")
_QUESTION = re.compile(r"\?|^\s*(?:how|hw|what|whats|what's|wat|wats|wat's|which|who|did|do|does|was|were|when|"
                       r"where)\b|^\s*(?:(?:can|could|would|will) (?:you|u) |pls |please |plz |kindly )*"
                       r"(?:tell|give|provide|let me know)\b|"
                       # a fact named first: "Calorie content of the Nando's order", "Number of receipts from ..."
                       r"^\s*(?:the\s+)?(?:[\w']+\s+){0,3}(?:content|rating|ratings|number|weather|calories|name|"
                       r"date|time|total|count|amount)\s+(?:of|for|at|on)\b", re.I)


def unreadable(text: str) -> str:
    """What a question asks about that Loupe reads from no receipt ("what did I buy at ...?": the items),
    or "" when it asks about what Loupe reads (the shop, date and total) or is no question."""
    text = question_part(text)  # "... at Thai Delicious? trying to split the bill": the question is the first part
    if not _QUESTION.search(text) or _LISTS_RECEIPTS.search(text):  # "find every receipt with a Puchong address"
        return ""
    return next((what for pattern, what in _UNREADABLE if pattern.search(text)), "")


def references(text: str, records: list[MatchedRecord]) -> list[MatchedRecord]:
    """The earlier records a message points at ("#3", "the second one", "the last two", "that one")."""
    if not records:
        return []
    if explicit := _EXPLICIT.search(text):
        index = int(explicit.group(1) or explicit.group(2))
        return [records[index - 1]] if 1 <= index <= len(records) else []
    if ordinal := _ORDINAL.search(text):
        position, count = _ORDINALS[ordinal.group(1).lower()], _COUNTS.get((ordinal.group(2) or "").lower(), 1)
        if position == -1:
            return records[-count:]
        start = (position - 1) if count == 1 else 0  # "the first two" are #1 and #2
        return records[start:start + count] if start < len(records) else []
    if compared := _COMPARED.search(text):  # "the larger of the two", "the earlier one"
        return _by_comparison(records, compared.group(1).lower())
    if _ONE_DATED.search(text) and (conditions := [c for c in filters(text) if c["column"] in ("date", "year")]):
        return [record for record in records if _dated_within(record, conditions)][:1]  # "the one from Feb 2017"
    if _PRONOUN.search(text):
        return records[:1]  # "it", "that one": the best match of the last search
    return []


# One of the records shown named by comparing them ("the larger of the two", "the earlier one") or by its date
_COMPARED = re.compile(r"\bthe\s+(larger|bigger|higher|dearer|pricier|more expensive|smaller|lower|cheaper|"
                       r"less expensive|earlier|older|later|newer|more recent)\s+(?:one\b|of\b)", re.I)
_LARGER = {"larger", "bigger", "higher", "dearer", "pricier", "more expensive"}
_LATER = {"later", "newer", "more recent"}
_ONE_DATED = re.compile(rf"\bthe\s+(?:one|{_THING}|documents?|invoices?|bills?)\s+(?:from|dated|of|on)\b", re.I)


def _by_comparison(records: list[MatchedRecord], word: str) -> list[MatchedRecord]:
    """The record a comparison picks among those shown, by its total (or price) or its date; none where none
    of them has the field."""
    by_date = word in ("earlier", "older") or word in _LATER
    value = (lambda r: r.metadata.get("date") or r.metadata.get("taken_at")) if by_date else \
        (lambda r: r.metadata.get("total") if r.metadata.get("total") is not None else r.metadata.get("price"))
    known = [record for record in records if value(record) is not None]
    if not known:
        return []
    return [(max if word in _LARGER or word in _LATER else min)(known, key=value)]


def _dated_within(record: MatchedRecord, conditions: list[dict[str, Any]]) -> bool:
    """The record's date (printed or given) meets every date or year condition of a message."""
    day = str(record.metadata.get("date") or record.metadata.get("taken_at") or "")[:10]
    if not day:
        return False
    tests = {">=": lambda v: day >= v, "<=": lambda v: day <= v, "contains": lambda v: v in day,
             "=": lambda v: day[:4] == str(v), "in": lambda v: int(day[:4]) in v}
    return all(tests[c["op"]](c["value"]) for c in conditions if c["op"] in tests)


def points_back(text: str, records: list[MatchedRecord], has_image: bool) -> list[MatchedRecord]:
    """The earlier records this message is about, when it is a follow-up on them rather than a new search.

    An explicit number always counts; an ordinal or a pronoun counts in a short message, in one that asks
    for an action (read, describe, more like, a total, a date), or in one that names a record by its place
    without asking to find anything ("state the registration number shown on the third receipt"); never when
    a new image came with it.
    """
    if _EXPLICIT.search(text):
        return references(text, records)
    if has_image:
        return []
    asks = TEXT.search(text) or CAPTION.search(text) or MORE.search(text) or ASKS_TOTAL.search(text) \
        or ASKS_DATE.search(text) or (_ORDINAL_THING.search(text) and not FIND.search(text)
                                      and not _LISTS_RECEIPTS.search(text))
    if not (asks or len(_WORD.findall(text)) <= 6):
        return []
    return references(text, records)


def order(text: str) -> Order | None:
    for pattern, wanted in _ORDERS:
        if pattern.search(text):
            return wanted
    return None


def filters(text: str, today: date | None = None) -> list[dict[str, Any]]:
    """Typed filter conditions a message asks for: dates and spans of them, years, prices, no screenshots (see
    store.filters)."""
    today = today or date.today()
    found: list[dict[str, Any]] = []
    text = _with_span_end_years(_with_named_days(text))
    if span := _span(text):
        found += [_condition("date", op, day) for op, day in ((">=", span[0]), ("<=", span[1])) if day]
        text = _without_spans(text)
    elif day := _one_day(text):
        found += [_condition("date", ">=", day), _condition("date", "<=", day)] if len(day) == 10 else \
            [_condition("date", "contains", day)]
        text = _without_days(text)
    month_years = [] if span else [(_month_number(m.group(1)), int(m.group(2))) for m in _MONTH_YEAR.finditer(text)]
    month_years += [] if span else [(int(m.group(1)), int(m.group(2))) for m in _NUMERIC_MONTH_YEAR.finditer(text)]
    rest = _NUMERIC_MONTH_YEAR.sub(" ", _MONTH_YEAR.sub(" ", text))
    if len(month_years) == 1:
        month, year = month_years[0]
        last_day = calendar.monthrange(year, month)[1]
        found += [_condition("date", ">=", f"{year:04d}-{month:02d}-01"),
                  _condition("date", "<=", f"{year:04d}-{month:02d}-{last_day:02d}")]
    elif not month_years and not span:  # beside a span, a month named again is the span's ("... new year's day")
        months = sorted({_month_number(m.group(1) or m.group(2)) for m in _MONTH_ALONE.finditer(rest)})
        if len(months) == 1:
            found.append(_condition("date", "contains", f"-{months[0]:02d}-"))
    years = sorted({int(y) for y in _YEAR.findall(rest)})
    if relative := _RELATIVE_YEAR.search(text):
        years = [today.year if relative.group(1).lower() == "this" else today.year - 1]
    if len(years) == 1:
        found.append(_condition("year", "=", years[0]))
    elif years:
        found.append(_condition("year", "in", years))
    if below := _PRICE_BELOW.search(text):
        found.append(_condition("price", "<", float(below.group(1).replace(",", "."))))
    if above := _PRICE_ABOVE.search(text):
        found.append(_condition("price", ">", float(above.group(1).replace(",", "."))))
    if total := _TOTAL_IS.search(text):
        found.append(_condition("total", "=", float(total.group(1).replace(",", "."))))
    if _HAS_PRICE.search(text) and not (below or above):
        found.append(_condition("price", "is set"))
    if _SCREENSHOTS.search(text) and re.search(r"\b(drop|exclude|remove|without|hide|no)\b", text, re.I):
        found += [_condition("file_name", "not contains", name) for name in SCREENSHOT_NAMES]
    return found


def _span(text: str) -> tuple[str | None, str | None] | None:
    """The first and last day of a span of months or of days in one month ("oct to dec 2017"), of two adjacent
    months compared ("jan vs feb 2018"), of a half of a month or the week from a day, of a quarter ("Q3 2017"),
    or from or up to a day ("since 15 march 2018": no last day; "before march 2018": no first day), if any."""
    if half := _HALF_MONTH.search(text):
        year, month = int(half.group(3)), _month_number(half.group(2))
        days = calendar.monthrange(year, month)[1]
        second = half.group(1).lower() in ("second", "2nd", "last")
        first, last = (16, days) if second else (1, 15)
        return f"{year:04d}-{month:02d}-{first:02d}", f"{year:04d}-{month:02d}-{last:02d}"
    if week := _NTH_WEEK.search(text):
        year, month, number = int(week.group(3)), _month_number(week.group(2)), _WEEKS[week.group(1).lower()]
        days = calendar.monthrange(year, month)[1]
        first = days - 6 if number == 5 else 7 * number - 6
        return f"{year:04d}-{month:02d}-{first:02d}", f"{year:04d}-{month:02d}-{min(first + 6, days):02d}"
    if (week := _WEEK_OF.search(text)) and week.group(1):
        try:
            first = date(int(week.group(3)), _month_number(week.group(2)), int(week.group(1)))
        except ValueError:  # "the week of 31 february"
            return None
        return first.isoformat(), (first + timedelta(days=6)).isoformat()
    if half := _HALF.search(text):
        second = (half.group(3) or "") == "2" or (half.group(1) or "").lower() in ("second", "2nd", "last")
        year = int(half.group(2) or half.group(4))
        return (f"{year:04d}-07-01", f"{year:04d}-12-31") if second else (f"{year:04d}-01-01", f"{year:04d}-06-30")
    if quarter := _QUARTER.search(text):
        number = int(quarter.group(1)) if quarter.group(1) else _QUARTERS[quarter.group(3).lower()]
        year = int(quarter.group(2) or quarter.group(4))
        last = 3 * number
        return f"{year:04d}-{last - 2:02d}-01", f"{year:04d}-{last:02d}-{calendar.monthrange(year, last)[1]:02d}"
    if match := _DAY_SPAN.search(text):
        return _dated_span(match)
    if match := _SPAN.search(text):
        return _closed_span(match)
    if match := _OPEN_SPAN.search(text):
        return _open_span(match)
    return None


# A span whose first day has its year and whose last has none ("between christmas 2017 and new year's day", once
# the days are numbers): the last in the same year, or the next where the span crosses New Year
_YEARLESS_END = re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?(?:\s+of)?\s+({_MONTH}|may)\.?\s*,?\s*((?:19|20)\d\d)"
                           rf"\s*(?:to|till|until|through|and|-)\s*(?:the\s+)?\d{{1,2}}(?:st|nd|rd|th)?(?:\s+of)?\s+"
                           rf"({_MONTH}|may)\b\.?(?!\.?\s*,?\s*(?:19|20)\d\d)", re.I)


def _with_span_end_years(text: str) -> str:
    """The text with the year of a span's first day written after its last day too (see _YEARLESS_END)."""
    def ended(span: re.Match) -> str:
        year = int(span[2]) + (_month_number(span[1]) > _month_number(span[3]))
        return f"{span[0]} {year}"
    return _YEARLESS_END.sub(ended, text)


def _with_named_days(text: str) -> str:
    """The text with the days it names in words written as numbers ("the fourth of december" -> "the 4 of
    december", "christmas day" -> "25 december")."""
    for pattern, day in _NAMED_DAYS:
        text = pattern.sub(day, text)
    return _WORDED_DAY.sub(lambda m: str(_DAY_WORDS[m[1].lower()]) if m[1] else
                           f"{m[2]}{_DAY_WORDS[m[3].lower()]}", text)


def _one_day(text: str) -> str | None:
    """The one day the text names, as an ISO date, or "-MM-DD" where no year is given (any year's); None where
    it names no day, or more than one."""
    days = []
    for match in _NUMERIC_DAY.finditer(text):
        first, second, year = int(match.group(1)), int(match.group(2)), int(match.group(3))
        day, month = (second, first) if second > 12 else (first, second)
        days.append((2000 + year if year < 100 else year, month, day))
    for match in _DAY_MONTH.finditer(text):
        day, name, year = (match.group(1), match.group(2), match.group(3)) if match.group(1) else \
            (match.group(5), match.group(4), match.group(6))
        days.append((int(year) if year else None, _month_number(name), int(day)))
    if len(set(days)) != 1:
        return None
    year, month, day = days[0]
    if not 1 <= month <= 12 or not 1 <= day <= calendar.monthrange(year or 2000, month)[1]:  # 2000: a leap year
        return None
    return date(year, month, day).isoformat() if year else f"-{month:02d}-{day:02d}"


def _without_days(text: str) -> str:
    return _DAY_MONTH.sub(" ", _NUMERIC_DAY.sub(" ", text))


def _without_spans(text: str) -> str:
    """The text with the spans :func:`_span` reads taken out (quarters, "oct to dec 2017", "since march 2018")."""
    for pattern in (_HALF_MONTH, _NTH_WEEK, _WEEK_OF, _HALF, _QUARTER, _DAY_SPAN, _SPAN, _OPEN_SPAN):
        text = pattern.sub(" ", text)
    return text


def _open_span(match: re.Match) -> tuple[str | None, str | None] | None:
    """From or up to a day, or a month's first or last day: (start, None) or (None, end)."""
    year, month = int(match.group(4)), _month_number(match.group(3))
    days = calendar.monthrange(year, month)[1]
    day = int(match.group(2)) if match.group(2) else None
    if day is not None and not 1 <= day <= days:
        return None
    first, last = date(year, month, day or 1), date(year, month, day or days)
    word = match.group(1).lower()
    if word == "before":
        return None, (first - timedelta(days=1)).isoformat()
    if word in ("until", "till", "up to", "on or before"):
        return None, last.isoformat()
    return ((last + timedelta(days=1)) if word == "after" else first).isoformat(), None


def _dated_span(match: re.Match) -> tuple[str, str] | None:
    """From one day or month of a year to another's: the first day of the first, the last day of the last; a
    first day without its year is in the year before where the span would end before it ("25 dec to 1 jan 2018")."""
    first_month, last_month = _month_number(match.group(2)), _month_number(match.group(5))
    last_year = int(match.group(6))
    first_year = int(match.group(3)) if match.group(3) else last_year - (first_month > last_month)
    last_of_month = calendar.monthrange(last_year, last_month)[1]
    try:
        first = date(first_year, first_month, int(match.group(1) or 1))
        last = date(last_year, last_month, int(match.group(4) or last_of_month))
    except ValueError:  # "31 February"
        return None
    return (first.isoformat(), last.isoformat()) if first <= last else None


def _closed_span(match: re.Match) -> tuple[str, str] | None:
    if (match["first_day"] is None) != (match["last_day"] is None):  # days go with days, months with months
        return None
    year, last = int(match["year"]), _month_number(match["last_month"])
    if match["first_day"]:
        first_day, last_day = int(match["first_day"]), int(match["last_day"])
        if _VERSUS.fullmatch(match["link"]) or not 1 <= first_day <= last_day <= calendar.monthrange(year, last)[1]:
            return None
        return f"{year:04d}-{last:02d}-{first_day:02d}", f"{year:04d}-{last:02d}-{last_day:02d}"
    first = _month_number(match["first_month"])
    if first > last or (_VERSUS.fullmatch(match["link"]) and last != first + 1):
        return None
    return f"{year:04d}-{first:02d}-01", f"{year:04d}-{last:02d}-{calendar.monthrange(year, last)[1]:02d}"


def _month_number(name: str) -> int:
    name = name.lower().rstrip(".")
    return MONTHS.get(name) or _MISSPELT_MONTHS.get(name) or MONTHS[name[:3]]


def _condition(column: str, op: str, value: Any = None) -> dict[str, Any]:
    return {"column": column, "op": op, "value": value}


def describe_filters(conditions: list[dict[str, Any]]) -> str:
    """The conditions in words, for the explanation ("year = 2018 and price is set")."""
    return " and ".join(f"{c['column']} {c['op']}" + (f" {c['value']}" if c.get("value") is not None else "")
                        for c in conditions)


def has_subject(text: str, known: frozenset[str] = frozenset()) -> bool:
    """Whether anything but filter, order, filler and ``known`` words is left: "only the March ones" has none."""
    words = _strip_conditions(text)
    for pattern, _ in _ORDERS:
        words = pattern.sub(" ", words)
    return any(w.lower() not in _EMPTY_WORDS and w.lower().removesuffix("s") not in _EMPTY_WORDS
               and w.lower() not in known for w in _WORD.findall(words))


def refines(text: str, previous_query: str = "") -> bool:
    """A message that narrows or reorders the previous results rather than asking for new ones.

    It names nothing the previous search did not ("only the March ones", "the cheapest aeon one" after
    "aeon receipts"); and a comparison that asks about "these", or starts "which ...", is about the last
    results even when it adds a word ("which fill-up cost me the most?").
    """
    known = frozenset(w.lower() for w in _WORD.findall(previous_query))
    sentences = _SENTENCE_END.split(text)  # "Thank you. Of those, I only need the February ones"
    if any(_REFINE_START.match(sentence) for sentence in sentences) or not has_subject(text, known):
        return True
    return order(text) is not None and bool(_ABOUT_THESE.search(text))


_BY_THE_DATE = re.compile(r"\b(?:that|this|the same|that particular|this particular)\s+(?:date|day)\b|"
                          r"\beverything\s+(?:dated|from|on)\b", re.I)


def named_by_date(text: str) -> bool:
    """The request names its records by their date alone: "pull every receipt with that date", "give me
    everything dated January 2019", "whatever receipts are from that day"; what else it says is the story
    around that day, so no word of it needs printing."""
    return bool(_BY_THE_DATE.search(text))


_NARROW_VERBS = {"only", "just", "filter", "narrow", "restrict", "limit"}  # not "drop", "without": they exclude


def narrowing_words(text: str, previous_query: str) -> str:
    """The words a narrowing adds to the previous search ("Filter that to the branches inside a Tesco", "Aiyo
    too many lah. Only the Cheras Leisure Mall branch can?"), or "" when it adds none (a date, an order)."""
    known = frozenset(w.lower() for w in _WORD.findall(previous_query))
    for sentence in _SENTENCE_END.split(text):
        start = _REFINE_START.match(sentence)
        if start and start.group(1).lower().split()[-1] in _NARROW_VERBS and has_subject(sentence, known):
            return search_words(sentence[start.end():])
    return ""


def search_words(text: str) -> str:
    """The words to search for: the request without greetings, politeness, question frames, filters, the story
    told before the request and the reason given after it.

    "could you find the receipts from Perniagaan Zheng Hui, please?" searches for "receipts from
    Perniagaan Zheng Hui"; "my car's been guzzling fuel - can you pull up every petrol receipt?" for "every
    petrol receipt"; "where's the receipt for the batteries? need to check the size" for "the receipt for the
    batteries". Text search itself forgives punctuation, spacing and case in names.
    """
    if quoted := _QUOTED.findall(text):  # "a shop with the word 'hardware' in its name": the quote is the words
        return " ".join(f'"{phrase.strip()}"' for phrase in quoted)
    words = _PURPOSE.sub("", _AFTERWORD.sub("", _strip_conditions(text)))
    if frame := _MID_FRAME.search(words):  # the request after the story, unless it names nothing itself
        before, after = words[:frame.start()], words[frame.end():]
        words = after if has_subject(_REASON.sub("", after)) else before  # "..., I want to remember" says why
    words = _OR_NOT.sub("", _NOT_THIS.sub("", words))
    for _ in range(3):  # frames nest: "hey, could you please find the ..."
        for pattern in _FILLER:
            cut = pattern.sub(" ", words).strip(" ,?.!")
            # a "reason" whose cut leaves nothing to search was the request: "Eh, I need all my Mr DIY resit lah"
            words = words if pattern is _FILLER[-1] and not has_subject(cut) else cut
    words = re.sub(r"\s+", " ", words).strip(" ,?.!-")
    return words or text.strip()


# A request frame after a story or before an afterthought: "... lately - can you pull up", "..., can you find"
_MID_FRAME = re.compile(r"\s*[-–,.;:!?]\s*(?:so\s+|pls\s+|please\s+)?"
                        r"(?:i(?:'d| would) (?:be (?:\w+ )?grateful|appreciate it|love it) if\s+|"
                        r"(?:do you|would you) mind if\s+)?"
                        r"(?:(?:can|could|would|will) (?:you|u)|(?:you|u) (?:can|could|would)|pls|"
                        r"please)\b(?:\s+(?:please|pls))?(?:\s+(?:pull up|find|show|get|dig up|look up|fetch|check))?"
                        r"(?:\s+me)?", re.I)
# A sentence after the question that gives the reason for it: "? need to check the size", ". can't find it"
_AFTERWORD = re.compile(r"(?<=[?.!])\s+(?:i\s+)?(?:need(?:ed)? (?:to|it|them|this|that|for)\b|can'?t|cannot|because|"
                        r"coz|cuz|cos|it'?s for|gotta|have to|got to|want to|trying to|for (?:my|the))\b.*$", re.I)


# A phrase in quotes, single or double, straight or curly; an apostrophe inside a word ("Nando's") opens none
_QUOTED = re.compile(r"(?:(?<=\s)|^)['\"\u2018\u201c]([^'\"\u2018\u2019\u201c\u201d]{2,60})['\"\u2019\u201d]"
                     r"(?=[\s,.;:!?)]|$)")
# What the request rules out names nothing to find: "PETRONAS RECEIPT NOT THE SHELL ONE", "the bistro, not the
# movie", "any receipt except the IKEA ones"
_NOT_THIS = re.compile(r"[\s,;-]*\b(?:but\s+)?(?:not\s+(?:the|my|a|an|any|that|those)|except(?:\s+for)?|excluding|"
                       r"other than|apart from)\s+[^,.;:!?]*", re.I)
# A Manglish question tag asks nothing: "Can find all or not?"
_OR_NOT = re.compile(r"\s+or\s+not\s*\??\s*$", re.I)


# A purpose after the request says why: "find that receipt so I can wave it under his nose"
_PURPOSE = re.compile(r"\s+so (?:that )?(?:i|we|he|she|they) (?:can|could|may)\b[^.!?]*", re.I)


def _strip_conditions(text: str) -> str:
    text = _with_named_days(text)
    text = _without_days(_without_spans(text) if _span(text) else text)  # a day is never a shop's word
    words = _NUMERIC_MONTH_YEAR.sub(" ", _MONTH_YEAR.sub(" ", text))
    for pattern in (_RELATIVE_YEAR, _PRICE_BELOW, _PRICE_ABOVE, _YEAR):
        words = pattern.sub(" ", words)
    words = re.sub(r"\b(?:in|from|during|of|dated)\s+(?=\s|$)", " ", words, flags=re.I)
    return _MONTH_ALONE.sub(" ", words)
