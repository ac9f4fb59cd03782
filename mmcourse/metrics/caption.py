"""Caption metrics from scratch: the COCO tokenisation, BLEU, ROUGE-L, CIDEr-D, METEOR and SPICE.

The COCO caption evaluation (``pycocoevalcap``) tokenises every caption with Stanford's Java PTB
tokenizer, lower-cases it and drops punctuation tokens, then scores the token strings. This module
does the same in pure Python:

- :func:`ptb_tokenize` re-implements the rules of the PTB lexer (CoreNLP 3.4.1, the jar that
  pycocoevalcap calls) that matter for captions: words, contractions (``is n't``, ``'s``),
  numbers, fractions, hyphenated words, abbreviations and acronyms, quotes, brackets
  (``-lrb-``: pycocoevalcap lower-cases them and then fails to remove them), dashes, ellipses and
  runs of ``!?``. :func:`ptb_tokenize_lines` tokenises a list the way the jar sees a file: each
  line ends with a newline and the next line is visible to the rules that look ahead.
- :func:`bleu`, :func:`rouge_l` and :func:`cider_d` reproduce pycocoevalcap 1.2's ``Bleu``,
  ``Rouge`` and ``Cider`` (which is CIDEr-D) exactly: BLEU's closest reference length and its
  ``tiny``/``small`` smoothing constants, ROUGE-L's ``beta = 1.2`` and its ``split(" ")``,
  CIDEr-D's document frequencies over the references of the whole corpus, its clipping, the
  Gaussian length penalty on the count of *bigrams* and the factor 10. The n-gram statistics are
  counted once with sparse matrices, and ROUGE-L's longest common subsequence is bit-parallel.
- :func:`meteor` re-implements METEOR 1.5 (Denkowski & Lavie 2014) as the jar computes it: its
  normaliser, exact / Snowball-stem / WordNet-synonym / paraphrase matches (the data read from
  pycocoevalcap's copy of the jar), the beam-search aligner that maximises matches then
  minimises chunks, the English parameters and the fragmentation penalty. ``backend="jar"``
  calls the official jar instead when Java and pycocoevalcap are installed.
- :func:`spice` computes SPICE's F-score over scene-graph tuples for ShapesWorld captions, parsed
  with the grammar that generated them.

All scorers take ``candidates: list[str]`` and ``references: list[list[str]]`` aligned item by item
and return ``(corpus_score, per_item_scores)``. Built in §42.2; §40.2 scores captioners with them.
"""
from __future__ import annotations

import math
import os
import re
import zlib
from itertools import chain

import numpy as np
from scipy import sparse

__all__ = ["ptb_tokenize", "ptb_tokenize_lines", "bleu", "rouge_l", "cider_d", "meteor", "spice",
           "meteor_normalize", "snowball_stem", "shapes_caption_graph", "scene_graph_tuples",
           "PUNCTUATIONS", "METEOR_FUNCTION_WORDS", "METEOR_PARAMETERS", "METEOR_WEIGHTS"]

# --------------------------------------------------------------------------------------------
# The PTB tokenizer
# --------------------------------------------------------------------------------------------

#: the tokens pycocoevalcap removes after tokenising (its list is upper-case for the brackets, so
#: the lower-cased ``-lrb-`` and friends survive)
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!",
                          ",", ":", "-", "--", "...", ";"])

_L = r"[^\W\d_]"  # a letter
_AN = r"[^\W_]"  # a letter or digit
_SPACE = r"[ \t\u00a0\u2000-\u200a\u3000]"
_NL = r"(?:\r\n|[\r\n\u2028\u2029\u000b\u000c\u0085])"
_SPACENL = rf"(?:{_SPACE}|{_NL})"
_APOS = r"(?:['\u0092\u2019\u00b4]|&apos;)"
_APOSETC = r"(?:['\u0092\u2019\u00b4`\u0091\u2018\u201b]|&apos;)"
_WORD = rf"{_L}(?:{_L}|\d|\u00ad)*(?:[.!?]{_L}(?:{_L}|\d|\u00ad)*)*"
_REDAUX = rf"{_APOS}(?:[msd]|re|ve|ll)"
_SREDAUX = rf"n{_APOSETC}t"
_NUM = r"(?:\d*(?:[.:,\u00ad\u066b\u066c]\d+)+|\d+(?:[.:,\u00ad\u066b\u066c\u2009\u202f]\d+)*)"
_NUM2 = r"\d+(?:[.,\u00ad\u066b\u066c]\d+)*"  # a number inside a THING
# THING (hyphenated words and numbers, O'Neil); twice, with its alternatives in both orders, so
# that one of them finds the longest match as JFlex does
_THING_A = (r"(?:[dDoOlL]" + _APOSETC + _AN + r")?(?:" + _AN + "+|" + _NUM2 + r")(?:[\-_\u058a"
            r"\u2010\u2011](?:[dDoOlL]" + _APOSETC + _AN + ")?" + _AN + "+)*")
_THING_B = (r"(?:[dDoOlL]" + _APOSETC + _AN + r")?(?:" + _NUM2 + "|" + _AN + r"+)(?:[\-_\u058a"
            r"\u2010\u2011](?:[dDoOlL]" + _APOSETC + _AN + ")?" + _AN + "+)*")
_ACRO = (r"(?:[A-Za-z](?:\.[A-Za-z])*|(?:Canada|Sino|Korean|EU|Japan|non)-U\.S|"
         r"U\.S\.-(?:U\.K|U\.S\.S\.R))")
_ACRO2 = (r"(?:[A-Za-z](?:\.[A-Za-z])+|(?:Canada|Sino|Korean|EU|Japan|non)-U\.S|"
          r"U\.S\.-(?:U\.K|U\.S\.S\.R))")
_ABBREV1 = (r"(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec|Mon|Tues?|Wed|Thu(?:rs)?|Fri|"
            r"Ala|Ariz|(?-i:A)z|(?-i:A)rk|Calif|Colo|Conn|Ct|Dak|(?-i:D)el|Fla|Ga|(?-i:I)ll|Ind|"
            r"Kans?|Ky|(?-i:L)a|(?-i:M)ass|Md|Mich|Minn|(?-i:M)iss|Mo|Mont|Neb|Nev|Okla|(?-i:O)re|"
            r"(?-i:P)a|Penn|Tenn|(?-i:T)ex|Va|Vt|(?-i:W)ash|Wisc?|Wyo|Inc|Cos?|Corp|Pp?t[yeYE]s?|"
            r"Ltd|Plc|Rt|Bancorp|Bhd|Assn|Univ|Intl|Sys|tel|est|ext|sq|Jr|Bros|(?:Ed|Ph)\.D|Esq|"
            r"etc|al|seq|Bldg)\.")
_ABBREV4 = (r"(?:Mrs?|Ms|Mx|(?-i:M)iss|Drs?|Profs?|Sens?|Reps?|Attys?|Lt|Col|Gen|Messrs|Govs?|Adm|"
            r"Rev|Maj|Sgt|Cpl|Pvt|Capt|Ste?|Ave|Pres|Lieut|Rt|Hon|Brig|Co?mdr|Pfc|Spc|Supts?|Det|"
            r"Mt|Ft|Adj|Adv|Asst|Assoc|Ens|Insp|Mlle|Mme|Msgr|Sfc|Sr|vs|(?-i:v)|Alex|Wm|Jos|Cie|"
            r"a\.k\.a|cf|TREAS|Ph|Invt|Elec|Natl|M[ftFT]g|Dept|Blvd|Rd|" + _ACRO + ")")
_ABBREV3 = r"(?:ca|figs?|prop|nos?|sect?s?|arts?|paras?|bldg|pp|op|approx|(?-i:Pt)|rs)\."
_SENT_START = (r"(?-i:A)bout|(?-i:A)ccording|(?-i:A)dditionally|(?-i:A)fter|(?-i:A)n|(?-i:A)s|"
               r"(?-i:A)t|(?-i:A)|(?-i:B)ut|(?-i:D)id|(?-i:D)uring|(?-i:E)arlier|(?-i:H)owever|"
               r"(?-i:H)ow|(?-i:H)ere|(?-i:H)er|(?-i:H)e|(?-i:I)f|(?-i:I)n|(?-i:I)t|(?-i:L)ast|"
               r"(?-i:M)any|(?-i:M)ore|(?-i:M)r\.|(?-i:M)s\.|(?-i:N)ow|(?-i:O)nce|(?-i:O)ne|"
               r"(?-i:O)ther|(?-i:O)ur|(?-i:S)he|(?-i:S)ince|(?-i:S)ome|(?-i:S)uch|(?-i:S)o|"
               r"(?-i:T)heir|(?-i:T)hen|(?-i:T)here|(?-i:T)hese|(?-i:T)hey|(?-i:T)his|(?-i:T)hat|"
               r"(?-i:T)he|(?-i:W)hen|(?-i:W)hile|(?-i:W)hat|(?-i:W)ho|(?-i:W)hy|(?-i:W)e|"
               r"(?-i:Y)et|(?-i:Y)ou")
_SGML = (r"<(?:[!?][A-Za-z\-][^>\r\n]*|[A-Za-z][A-Za-z0-9_:.\-]*(?:[ ]+(?:[A-Za-z][A-Za-z0-9_:.\-]*"
         r"(?:[ ]*=[ ]*(?:'[^'\r\n]*'|\"[^\"\r\n]*\"|[A-Za-z][A-Za-z0-9_:.\-]*))?))*[ ]*/?|"
         r"/[A-Za-z][A-Za-z0-9_:.\-]*)[ ]*>")
_MISC = ("(?-i:[+%&~^|\\\\\u00a6\u00a7\u00a8\u00a9\u00ac\u00ae\u00af\u00b0-\u00b3\u00b4-\u00ba"
         "\u00d7\u00f7\u0387\u05be\u05c0\u05c3\u05c6\u05f3\u05f4\u0600-\u0603\u0606-\u060a\u060c"
         "\u0614\u061b\u061e\u066a\u066d\u0703-\u070d\u07f6-\u07f8\u0964\u0965\u0e4f\u1fbd"
         "\u2016\u2017\u2020-\u2025\u2030-\u2038\u203b\u203c\u2043\u203e-\u2042\u2044"
         "\u207a-\u207f\u208a-\u208e\u2100-\u214f\u2190-\u21ff\u2200-\u2bff\u3001-\u3006"
         "\u3008-\u3020\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65])")

_BRACKETS = {"(": "-LRB-", ")": "-RRB-", "[": "-LSB-", "]": "-RSB-", "{": "-LCB-", "}": "-RCB-"}
_FRACTIONS = {"\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4", "\u2153": "1/3", "\u2154": "2/3"}
_CURRENCY = {"\u00a2": "cents", "\u00a3": "#", "\u0080": "$", "\u20ac": "$"}


def _latex_quotes(tok: str, left: bool) -> str:
    """PTBLexer's ``latexQuotes``: ASCII quotes become `` ` `` / ``'`` (doubled for double quotes)
    depending on the side, curly quotes map by their own side."""
    tok = re.sub(r"&apos;|'", "`" if left else "'", tok)
    tok = re.sub(r"\"|&quot;", "``" if left else "''", tok)
    tok = re.sub("[\u0082\u008b\u0091\u2018\u201a\u201b\u2039]", "`", tok)
    tok = re.sub("[\u0092\u009b\u00b4\u2019\u203a]", "'", tok)
    tok = re.sub("[\u0084\u0093\u201c\u201e\u00ab]|[\u0091\u2018]'", "``", tok)
    return re.sub("[\u0094\u201d\u00bb]|[\u0092\u2019]'", "''", tok)


# Rules in the lexer's priority order: (main, trailing context or None, action). As in JFlex the
# longest match wins, counting the trailing context, and ties go to the earlier rule. Actions:
# "tok" keeps the text, "left"/"right" normalise quotes, "push<k>" returns all but the last k
# characters, "redup" returns the text and then its final period again, ...
_RULES_SPEC: list[tuple[str, str | None, str]] = [
    (r"c\+\+|[cf]#", None, "tok"),
    (r"cannot|'twas", None, "push3"),
    (rf"{_APOS}tis|gonna|gotta|lemme|gimme|wanna", None, "push2"),
    (_SGML, None, "nbsp"),
    (r"&(?:MD|mdash|ndash);|[\u0096\u0097\u2013\u2014\u2015]", None, "dash"),
    (r"&amp;", None, "amp"),
    (r"&(?:HT|TL|UR|LR|QC|QL|QR|odq|cdq|#[0-9]+);", None, "tok"),
    (_WORD, _REDAUX, "word"),
    (r"[A-Za-z\u00ad]*[A-MO-Za-mo-z]\u00ad*", _SREDAUX, "word"),
    (_WORD, None, "word"),
    (rf"{_APOS}n{_APOS}?|[lLdDjJ]{_APOS}|Dunkin{_APOS}|somethin{_APOS}|ol{_APOS}|{_APOS}em|"
     rf"diff{_APOSETC}rent|(?-i:[A-HJ-XZn]){_APOSETC}{_L}{{2}}{_L}*|{_APOS}[2-9]0s|{_APOS}till?|"
     rf"{_L}{_L}*(?-i:[aeiouyAEIOUY]){_APOSETC}(?-i:[aeiouA-Z]){_L}*|{_APOS}cause|cont'd\.?|"
     rf"nor'easter|c'mon|e'er|s'mores|ev'ry|li'l|nat'l|O{_APOSETC}o", None, "tok"),
    (rf"y{_APOS}", _L, "tok"),
    (r"(?:ftp|svn|svn\+ssh|http|https|mailto)://[^ \t\n\f\r\"<>|(){}]+"
     r"[^ \t\n\f\r\"<>|.!?(){},\-]", None, "tok"),
    (r"(?:(?:www\.(?:[^ \t\n\f\r\"<>|.!?(){},]+\.)+[a-zA-Z]{2,4})|"
     r"(?:(?:(?-i:[^ \t\n\f\r\"`'<>|.!?(){}"
     r"\x2c-\x5f$])+\.)+(?:com|net|org|edu)))(?:/[^ \t\n\f\r\"<>|()]+[^ \t\n\f\r\"<>|.!?(){},\-])?",
     None, "tok"),
    (r"(?:&lt;|<)?[a-zA-Z0-9][^ \t\n\f\r\"<>|(){}\u00a0]*@(?:[^ \t\n\f\r\"<>|(){}.\u00a0]+\.)*"
     r"[^ \t\n\f\r\"<>|(){}.\u00a0]+(?:&gt;|>)?", None, "tok"),
    (rf"[@\uff20][a-zA-Z_][a-zA-Z_0-9]*|[#\uff03]{_L}(?:{_L}|\d|_)*(?:{_L}|\d)", None, "tok"),
    (_REDAUX, r"[\W\d_]", "right"),
    (_SREDAUX, r"[\W\d_]", "right"),
    (r"\d{1,2}[\-/]\d{1,2}[\-/]\d{2,4}", None, "tok"),
    (rf"[\-+]?{_NUM}", None, "tok"),
    (r"(?:\d{1,4}[\- \u00a0])?\d{1,4}(?:\\?/|\u2044)\d{1,4}", None, "nbsp"),
    ("[\u00bc\u00bd\u00be\u2153-\u215e]", None, "frac"),
    (rf"-(?:RRB|LRB|RCB|LCB|RSB|LSB)-|C\.D\.s|pro-|anti-|S(?:&|&amp;)P-500|S(?:&|&amp;)Ls|"
     rf"Cap{_APOS}n|c{_APOS}est", None, "amp"),
    (r"[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}(?:\\?/[A-Za-z0-9]+(?:-[A-Za-z]+){0,2}){1,2}", None, "tok"),
    (r"(?-i:[A-Z])*\$|#", None, "tok"),
    ("[\u00a2\u00a3\u00a4\u00a5\u0080\u20a0\u20aa\u20ac\u20b9\u060b\u0e3f\u20a4\uffe0\uffe1"
     "\uffe5\uffe6]", None, "currency"),
    (rf"{_ACRO}\.", rf"{_SPACENL}+(?:{_SENT_START})(?:{_SPACENL}|[?!])", "acronym"),
    (_ABBREV3, rf"{_SPACENL}?\d", "tok"),
    (r"(?:So|No)\.", rf"{_SPACE}+(?:Africa|Korea|Cal)", "tok"),
    (r"(?:pt[eyEY]|co)\.", rf"{_SPACE}(?:ltd|lim)", "tok"),
    (_ABBREV1, rf"{_SPACENL}(?:{_SPACENL}|(?-i:[A-Z])|{_SGML})", "redup"),
    (_ABBREV1, r"[\s\S][\s\S]", "tok"),
    (_ABBREV1, None, "redup"),
    (rf"{_ABBREV4}\.", None, "tok"),
    (_ABBREV4, _SPACE, "tok"),
    (_ACRO, _SPACENL, "tok"),
    (rf"{_APOS}[0-9][0-9]", _SPACENL, "tok"),
    (rf"{_WORD}\.", r"[,;:\u3001]", "word"),
    (r"(?:\([0-9]{2,3}\)[ \u00a0]?|(?:\+\+?)?(?:[0-9]{2,4}[\- \u00a0])?[0-9]{2,4}[\- \u00a0])"
     r"[0-9]{3,4}[\- \u00a0]?[0-9]{3,5}|(?:(?:\+\+?)?[0-9]{2,4}\.)?[0-9]{2,4}\.[0-9]{3,4}\."
     r"[0-9]{3,5}", None, "phone"),
    (r"\"|&quot;", r"[^\W_]|\$", "left"),
    (r"\"|&quot;|''", None, "right"),
    (r"<|&lt;", None, "lt"),
    (r">|&gt;", None, "gt"),
    (r"[<>]?[:;=][\-o*']?(?-i:[()DPdpO\\{@|\[\]])", r"[^\w]|_|\Z", "paren"),
    (r"[\^x=~<>]\.[\^x=~<>]|[\-\^x=~<>']_[\-\^x=~<>']|\([\-\^x=~<>'][_.]?[\-\^x=~<>']\)|"
     r"\([\^x=~<>']-[\^x=~<>'`]\)", None, "paren"),
    (r"[{}\[\]()]", None, "bracket"),
    (r"-+", None, "hyphens"),
    (r"\.\.\.+|[\u0085\u2026]|\.[ \u00a0](?:\.[ \u00a0])+\.", None, "ellipsis"),
    (r"@+|#+|_+", None, "tok"),
    (r"\*+|(?:\\\*){1,3}", None, "tok"),
    (r"[,;:\u3001]", None, "tok"),
    (r"[?!]+", None, "tok"),
    (r"[.\u00a1\u00bf\u037e\u0589\u061f\u06d4\u0700-\u0702\u07fa\u3002]", None, "tok"),
    (r"=", None, "tok"),
    (r"/", None, "tok"),
    (rf"[A-Za-z0-9][A-Za-z0-9.,\u00ad]*(?:-(?:{_ACRO2}\.|[A-Za-z0-9\u00ad]+))+", None, "tok"),
    (_THING_A, None, "right"),
    (_THING_B, None, "right"),
    (rf"(?:{_THING_A})\.", r"[,;:\u3001]", "right"),
    (rf"(?:{_THING_B})\.", r"[,;:\u3001]", "right"),
    (r"(?-i:[A-Z])+(?:(?:[+&]|&amp;)(?-i:[A-Z])+)+", None, "amp"),
    (r"[`\u2018\u201a-\u201f\u0082\u0084\u0091\u0093\u0094\u2039\u203a\u00ab\u00bb]{1,2}|'|&apos;",
     rf"{_L}[^ \t\u00a0\u2000-\u200a\u3000\r\n\u2028\u2029\u000b\u000c\u0085]", "left"),
    (rf"[`\u2018-\u201f\u0082\u0084\u0091-\u0094\u2039\u203a\u00ab\u00bb]{{1,2}}|{_APOS}", None,
     "right"),
    (_REDAUX, None, "right"),
    (_SREDAUX, None, "right"),
    (r"<<|>>", None, "tok"),
    (_MISC, None, "tok"),
]
_RULES = [(re.compile(f"({main})({trail})" if trail else f"({main})()", re.IGNORECASE), action)
          for main, trail, action in _RULES_SPEC]
_SKIP = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000\r\n\u2028\u2029\u000b\u000c\u0085\x00"
                   r"\u200b\u200e\u200f\ufeff\x7f]+")
# a plain word or a comma/colon/semicolon followed by white space: no rule can do better than
# taking it as it is (except the assimilations "cannot", "gonna", ... which are checked apart)
_FAST = re.compile(r"([A-Za-z]+|[,;:])(?=[ \t\r\n]|\Z)|([A-Za-z]+)(?=[,;:](?:[ \t\r\n]|\Z))")
_ASSIMILATIONS = re.compile(r"cannot|gonna|gotta|lemme|gimme|wanna", re.IGNORECASE)


def _apply(action: str, text: str) -> tuple[list[str], int]:
    """Run a rule's action on its matched text: the tokens it emits and how many characters of
    the text it consumes (the rest is pushed back)."""
    n = len(text)
    if action in ("tok", "word"):
        return [text.replace("\u00ad", "") if action == "word" else text], n
    if action == "right":
        return [_latex_quotes(text, False)], n
    if action == "left":
        return [_latex_quotes(text, True)], n
    if action in ("push2", "push3"):
        k = int(action[-1])
        return [text[:-k]], n - k
    if action == "redup":  # processAbbrev1: the abbreviation with its period, then the period
        return [text], n - 1
    if action == "acronym":  # processAcronym: "I." -> "I" ".", "U.S." -> "U.S." "."
        return ([text[:-1]], n - 1) if n == 2 else ([text], n - 1)
    if action == "nbsp":
        return [text.replace(" ", "\u00a0")], n
    if action == "phone":
        text = text.replace(" ", "\u00a0")
        return [text.replace("(", "-LRB-").replace(")", "-RRB-")], n
    if action == "dash":
        return ["--"], n
    if action == "amp":
        return [text.replace("&amp;", "&")], n
    if action == "frac":
        return [_FRACTIONS.get(text, text)], n
    if action == "currency":
        return [_CURRENCY.get(text, "$")], n
    if action == "lt":
        return ["<"], n
    if action == "gt":
        return [">"], n
    if action == "paren":
        return [text.replace("(", "-LRB-").replace(")", "-RRB-")], n
    if action == "bracket":
        return [_BRACKETS[text]], n
    if action == "hyphens":
        return ["--" if 3 <= n <= 4 else text], n
    if action == "ellipsis":
        return ["..."], n
    raise AssertionError(action)


def _lex(text: str, end: int) -> list[str]:
    """Tokens of ``text[:end]``; the characters after ``end`` are only seen as look-ahead."""
    tokens: list[str] = []
    pos = 0
    while True:
        skip = _SKIP.match(text, pos)
        if skip:
            pos = skip.end()
        if pos >= end:
            return tokens
        fast = _FAST.match(text, pos)
        if fast and not _ASSIMILATIONS.match(text, pos):
            tokens.append(fast.group())
            pos = fast.end()
            continue
        best, best_len = None, 0
        for rule, action in _RULES:
            m = rule.match(text, pos)
            if m and m.end() - pos > best_len:
                best, best_len = (m.group(1), action), m.end() - pos
        if best is None or not best[0]:  # untokenizable: PTBTokenizer deletes it
            pos += 1
            continue
        new, used = _apply(best[1], best[0])
        tokens.extend(new)
        pos += used


# Whole-line shortcut: a line of plain words, spaces and ",;:" followed by a space (or its end),
# optionally ending in ".", "!", "?" or "..." (after a space, or right after a word that no
# abbreviation rule claims), tokenises to its words: the punctuation tokens are dropped anyway
_SIMPLE_BODY = re.compile(r"(?:[A-Za-z]+|[,;:](?= |\Z)| )*+\Z")
_LAST_WORD = re.compile(r"[A-Za-z]+\Z")
_ABBREV_END = re.compile(rf"(?:{_ABBREV1}|{_ABBREV4}\.|{_ABBREV3}|(?:pt[eyEY]|co)\.)\Z",
                         re.IGNORECASE)
_NO_PUNCT = str.maketrans(",;:", "   ")


def _simple_line(line: str) -> str | None:
    body = line.rstrip(" ")
    if body.endswith(("...", ".", "!", "?")):
        end = 3 if body.endswith("...") else 1
        if body[-end - 1:-end] != " ":  # the punctuation touches the last word
            last = _LAST_WORD.search(body, max(0, len(body) - end - 40), len(body) - end)
            if last is None or (body[-1] == "." and _ABBREV_END.match(last.group() + ".")):
                return None
        body = body[:-end]
    if not _SIMPLE_BODY.match(body):
        return None
    low = body.lower()
    if "cannot" in low or "gonna" in low or "gotta" in low or "lemme" in low or "gimme" in low \
            or "wanna" in low:
        return None
    return " ".join(low.translate(_NO_PUNCT).split())


def _finish(tokens: list[str]) -> str:
    """Lower-case as ``-lowerCase`` does, then drop pycocoevalcap's punctuation tokens."""
    return " ".join(w for w in (t.lower() for t in tokens) if w not in PUNCTUATIONS)


def ptb_tokenize(text: str) -> str:
    """Tokenise one caption as pycocoevalcap's ``PTBTokenizer`` does: the Stanford PTB rules,
    lower-cased, with the COCO punctuation tokens removed; returns the tokens joined by spaces.

    >>> ptb_tokenize("A man's dog isn't running (fast)!")
    "a man 's dog is n't running -lrb- fast -rrb-"

    The caption is read as a line of a file that ends there (the jar's rules that look past a
    sentence-final abbreviation see a newline). Built in §42.2.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a str, got {type(text).__name__}")
    line = text.replace("\n", " ")
    simple = _simple_line(line)
    return simple if simple is not None else _finish(_lex(line + "\n", len(line)))


def ptb_tokenize_lines(texts: list[str]) -> list[str]:
    """Tokenise a list of captions exactly as pycocoevalcap tokenises them in one call: as the
    lines of one file, so a rule that looks ahead past the end of a line sees the next line
    (``"Plan B."`` gives ``"plan b"`` before a line starting "The ..." and ``"plan b."``
    otherwise). Returns one token string per caption. Built in §42.2.
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise ValueError("expected a list of str (one caption per item)")
    lines = [t.replace("\n", " ") for t in texts]
    out = []
    for i, line in enumerate(lines):
        simple = _simple_line(line)
        if simple is not None:
            out.append(simple)
            continue
        following = ("\n" + lines[i + 1][:64]) if i + 1 < len(lines) else ""
        out.append(_finish(_lex(line + following, len(line))))
    return out


# --------------------------------------------------------------------------------------------
# Shared input handling and n-gram statistics
# --------------------------------------------------------------------------------------------

def _check_captions(candidates: list[str], references: list[list[str]]) -> None:
    if isinstance(candidates, str) or not isinstance(candidates, (list, tuple)):
        raise ValueError(f"expected candidates: list[str], got {type(candidates).__name__}")
    if isinstance(references, str) or not isinstance(references, (list, tuple)):
        raise ValueError(f"expected references: list[list[str]], got {type(references).__name__}")
    if len(candidates) != len(references):
        raise ValueError(f"expected one list of references per candidate, got {len(candidates)} "
                         f"candidates and {len(references)} reference lists")
    if len(candidates) == 0:
        raise ValueError("expected at least one candidate caption, got none")
    for i, (cand, refs) in enumerate(zip(candidates, references)):
        if not isinstance(cand, str):
            raise ValueError(f"expected candidate {i} to be a str, got {type(cand).__name__}")
        if isinstance(refs, str) or not isinstance(refs, (list, tuple)):
            raise ValueError(f"expected references[{i}] to be a list of str, got {refs!r}")
        if len(refs) == 0:
            raise ValueError(f"expected at least one reference for item {i}, got an empty list")
        if not all(isinstance(r, str) for r in refs):
            raise ValueError(f"expected references[{i}] to hold only str, got {refs!r}")


def _prepare(candidates: list[str], references: list[list[str]], tokenize: bool,
             ) -> tuple[list[str], list[list[str]]]:
    """Validate, then tokenise as pycocoevalcap does: references of all items in one call, then
    candidates in another (so look-ahead crosses lines within each call only)."""
    _check_captions(candidates, references)
    if not tokenize:
        return list(candidates), [list(r) for r in references]
    flat = ptb_tokenize_lines([r for refs in references for r in refs])
    out, k = [], 0
    for refs in references:
        out.append(flat[k:k + len(refs)])
        k += len(refs)
    return ptb_tokenize_lines(list(candidates)), out


def _ngram_counts(token_lists: list[list[str]], max_n: int) -> list[sparse.csr_matrix]:
    """Count matrices of the 1..max_n-grams of each token list: ``counts[k-1]`` is a sparse
    (len(token_lists), V_k) matrix over a vocabulary of k-grams shared by all rows.

    Words become integer ids, and a k-gram's id is found from its (k-1)-gram id and its last word
    with ``np.unique``, so no tuple of strings is ever built."""
    lengths = np.array([len(t) for t in token_lists], dtype=np.int64)
    words = list(chain.from_iterable(token_lists))
    vocab = dict.fromkeys(words)
    for i, w in enumerate(vocab):
        vocab[w] = i
    ids = np.fromiter(map(vocab.__getitem__, words), dtype=np.int64, count=len(words))
    row = np.repeat(np.arange(len(token_lists)), lengths)  # caption of each token
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)  # first token of each caption
    left = np.repeat(lengths, lengths) - (np.arange(len(ids)) - starts)  # tokens left in caption
    n_rows = len(token_lists)
    counts = []
    gram_ids, n_grams = ids, len(vocab)  # ids of the k-grams starting at each position
    for k in range(1, max_n + 1):
        if k > 1:
            nxt = np.zeros_like(ids)
            nxt[:-k + 1] = ids[k - 1:]
            codes = gram_ids * len(vocab) + nxt  # (k-1)-gram id and the next word
            valid = left >= k
            uniq, inverse = np.unique(codes[valid], return_inverse=True)
            gram_ids = np.zeros_like(ids)
            gram_ids[valid] = inverse
            n_grams = len(uniq)
        valid = left >= k
        counts.append(sparse.csr_matrix((np.ones(int(valid.sum())), (row[valid], gram_ids[valid])),
                                        shape=(n_rows, max(n_grams, 1))))
    return counts


def _group_max(matrix: sparse.csr_matrix, groups: np.ndarray, n_groups: int) -> sparse.csr_matrix:
    """Element-wise maximum of the rows of ``matrix`` within each group (rows -> groups)."""
    coo = matrix.tocoo()
    if coo.nnz == 0:
        return sparse.csr_matrix((n_groups, matrix.shape[1]))
    key = groups[coo.row].astype(np.int64) * matrix.shape[1] + coo.col  # (group, column) pairs
    order = np.argsort(key, kind="stable")
    key, val = key[order], coo.data[order]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    group, col = np.divmod(key[start], matrix.shape[1])
    return sparse.csr_matrix((np.maximum.reduceat(val, start), (group, col)),
                             shape=(n_groups, matrix.shape[1]))


# --------------------------------------------------------------------------------------------
# BLEU
# --------------------------------------------------------------------------------------------

def bleu(candidates: list[str], references: list[list[str]], max_n: int = 4, tokenize: bool = True,
         ) -> tuple[list[float], list[list[float]]]:
    """BLEU-1..``max_n`` of each candidate against its references, as pycocoevalcap's ``Bleu``.

    Modified n-gram precisions (counts clipped by the maximum count in any one reference), their
    geometric mean, and a brevity penalty against the *closest* reference length (ties go to the
    shorter one). The corpus score pools the clipped counts and lengths over all items; each item
    also gets its own sentence-level BLEU. As in pycocoevalcap, ``1e-15`` is added to each match
    count and ``1e-9`` to each n-gram count, so a precision of zero gives ~1e-6, not 0.

    Returns ``(corpus, per_item)``: a list of ``max_n`` floats (BLEU-1..n) and, for each item, its
    list of ``max_n`` floats. ``tokenize=False`` takes the strings as already tokenised (split on
    white space). Built in §42.2.
    """
    if not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"expected max_n to be a positive int, got {max_n!r}")
    cands, refs = _prepare(candidates, references, tokenize)
    cand_tokens = [c.split() for c in cands]
    ref_tokens = [r.split() for rs in refs for r in rs]
    ref_item = np.repeat(np.arange(len(refs)), [len(rs) for rs in refs])
    counts = _ngram_counts(cand_tokens + ref_tokens, max_n)
    n_items = len(cand_tokens)
    correct = np.zeros((n_items, max_n))
    for k, mat in enumerate(counts):
        cand_counts, ref_max = mat[:n_items], _group_max(mat[n_items:], ref_item, n_items)
        correct[:, k] = np.asarray(cand_counts.minimum(ref_max).sum(axis=1)).ravel()
    tiny, small = 1e-15, 1e-9
    ref_len_flat = [len(t) for t in ref_tokens]
    ref_lens, k = [], 0
    for rs in refs:
        ref_lens.append(ref_len_flat[k:k + len(rs)])
        k += len(rs)
    total_correct, total_guess = [0.0] * max_n, [0] * max_n
    total_test, total_ref = 0, 0
    per_item = []
    for i, tokens in enumerate(cand_tokens):
        test_len = len(tokens)
        ref_len = min((abs(rl - test_len), rl) for rl in ref_lens[i])[1]
        total_test += test_len
        total_ref += ref_len
        score, item = 1.0, []
        for k in range(max_n):
            guess = max(0, test_len - k)
            c = int(correct[i, k])
            total_correct[k] += c
            total_guess[k] += guess
            score *= (float(c) + tiny) / (float(guess) + small)
            item.append(score ** (1.0 / (k + 1)))
        ratio = (test_len + tiny) / (ref_len + small)
        if ratio < 1:
            item = [b * math.exp(1 - 1 / ratio) for b in item]
        per_item.append(item)
    corpus, score = [], 1.0
    for k in range(max_n):
        score *= float(total_correct[k] + tiny) / (total_guess[k] + small)
        corpus.append(score ** (1.0 / (k + 1)))
    ratio = (total_test + tiny) / (total_ref + small)
    if ratio < 1:
        corpus = [b * math.exp(1 - 1 / ratio) for b in corpus]
    return corpus, per_item


# --------------------------------------------------------------------------------------------
# ROUGE-L
# --------------------------------------------------------------------------------------------

def _lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists, bit-parallel (Allison & Dix
    1986; Hyyrö 2004): one big-integer update per token of ``a``."""
    masks: dict[str, int] = {}
    for i, tok in enumerate(b):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(b)) - 1
    row = full
    for tok in a:
        match = row & masks.get(tok, 0)
        row = ((row + match) | (row - match)) & full
    return len(b) - bin(row).count("1")


def rouge_l(candidates: list[str], references: list[list[str]], tokenize: bool = True,
            beta: float = 1.2) -> tuple[float, list[float]]:
    """ROUGE-L of each candidate, as pycocoevalcap's ``Rouge``: the longest common subsequence
    with each reference gives a precision and a recall; the best precision and the best recall
    (over references, taken separately) combine into an F-measure with ``beta = 1.2``:
    ``(1 + beta^2) P R / (R + beta^2 P)``. Tokens are ``str.split(" ")`` pieces, as there (an empty
    caption is one empty token). Returns ``(mean, per_item)``. Built in §42.2.
    """
    cands, refs = _prepare(candidates, references, tokenize)
    per_item = []
    for cand, rs in zip(cands, refs):
        c = cand.split(" ")
        prec, rec = [], []
        for ref in rs:
            r = ref.split(" ")
            lcs = _lcs_length(c, r)
            prec.append(lcs / float(len(c)))
            rec.append(lcs / float(len(r)))
        p, r = max(prec), max(rec)
        f = ((1 + beta**2) * p * r) / float(r + beta**2 * p) if p != 0 and r != 0 else 0.0
        per_item.append(f)
    return float(np.mean(per_item)), per_item


# --------------------------------------------------------------------------------------------
# CIDEr-D
# --------------------------------------------------------------------------------------------

def cider_d(candidates: list[str], references: list[list[str]], tokenize: bool = True,
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """CIDEr-D, as pycocoevalcap's ``Cider`` computes it (that class *is* CIDEr-D).

    Each caption becomes four TF-IDF vectors (1- to 4-grams) whose IDF is
    ``log(#items) - log(max(1, df))``, ``df`` counting the items whose references contain the
    n-gram (so the score of an item depends on the whole corpus; a single-item corpus scores 0).
    For each reference and each n: the candidate's weights are clipped at the reference's,
    ``sum min(c, r) r / (|c| |r|)``, times a Gaussian penalty ``exp(-d^2 / (2 sigma^2))`` on the
    difference ``d`` of the two captions' numbers of *bigrams* (pycocoevalcap's length). The item
    score is 10 x the mean over n of the mean over references. Returns ``(mean, per_item)``.
    Built in §42.2.
    """
    cands, refs = _prepare(candidates, references, tokenize)
    n_items, n = len(cands), 4
    ref_item = np.repeat(np.arange(n_items), [len(rs) for rs in refs])
    tokens = [c.split() for c in cands] + [r.split() for rs in refs for r in rs]
    counts = _ngram_counts(tokens, n)
    log_items = np.log(float(n_items))
    bigrams = np.array([max(len(t) - 1, 0) for t in tokens], dtype=np.float64)
    delta = bigrams[:n_items][ref_item] - bigrams[n_items:]  # (R,)
    penalty = np.e ** (-(delta**2) / (2 * sigma**2))
    sims = np.zeros((len(ref_item), n))  # (R, n): one similarity per reference and n-gram order
    for k, mat in enumerate(counts):
        cand_counts, ref_counts = mat[:n_items], mat[n_items:]
        in_item = _group_max(ref_counts, ref_item, n_items)
        in_item.data[:] = 1.0
        df = np.asarray(in_item.sum(axis=0)).ravel()  # (V,): items whose references have it
        idf = sparse.diags(log_items - np.log(np.maximum(1.0, df)))
        vec_c = (cand_counts @ idf).tocsr()  # (N, V) TF-IDF of the candidates
        vec_r = (ref_counts @ idf).tocsr()  # (R, V) TF-IDF of the references
        norm_c = np.sqrt(np.asarray(vec_c.multiply(vec_c).sum(axis=1)).ravel())[ref_item]
        norm_r = np.sqrt(np.asarray(vec_r.multiply(vec_r).sum(axis=1)).ravel())
        vec_c = vec_c[ref_item]  # (R, V): each reference next to its candidate
        val = np.asarray(vec_c.minimum(vec_r).multiply(vec_r).sum(axis=1)).ravel()
        both = (norm_c != 0) & (norm_r != 0)
        val[both] /= norm_c[both] * norm_r[both]
        sims[:, k] = val * penalty
    per_ref = sims.mean(axis=1)  # mean over n-gram orders
    per_item = np.bincount(ref_item, weights=per_ref, minlength=n_items)
    per_item = per_item / np.bincount(ref_item, minlength=n_items) * 10.0
    return float(per_item.mean()), per_item.tolist()


# --------------------------------------------------------------------------------------------
# METEOR 1.5
# --------------------------------------------------------------------------------------------

_VOWELS = frozenset("aeiouy")
_VALID_LI = frozenset("cdeghkmnrt")
_DOUBLES = ("bb", "dd", "ff", "gg", "mm", "nn", "pp", "rr", "tt")
_STEM_EXCEPTIONS = {"skis": "ski", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie",
                    "idly": "idl", "gently": "gentl", "ugly": "ugli", "early": "earli",
                    "only": "onli", "singly": "singl", "sky": "sky", "news": "news",
                    "howe": "howe", "atlas": "atlas", "cosmos": "cosmos", "bias": "bias",
                    "andes": "andes"}
_STEP1A_STOP = frozenset(["inning", "outing", "canning", "herring", "earring", "proceed",
                          "exceed", "succeed"])
_STEP2 = (("ization", "ize"), ("ational", "ate"), ("fulness", "ful"), ("ousness", "ous"),
          ("iveness", "ive"), ("tional", "tion"), ("biliti", "ble"), ("lessli", "less"),
          ("entli", "ent"), ("ation", "ate"), ("alism", "al"), ("aliti", "al"), ("ousli", "ous"),
          ("iviti", "ive"), ("fulli", "ful"), ("enci", "ence"), ("anci", "ance"), ("abli", "able"),
          ("izer", "ize"), ("ator", "ate"), ("alli", "al"), ("bli", "ble"), ("ogi", "og"),
          ("li", ""))
_STEP3 = (("ational", "ate"), ("tional", "tion"), ("alize", "al"), ("icate", "ic"),
          ("iciti", "ic"), ("ative", ""), ("ical", "ic"), ("ness", ""), ("ful", ""))
_STEP4 = ("ement", "ance", "ence", "able", "ible", "ment", "ant", "ent", "ism", "ate", "iti", "ous",
          "ive", "ize", "ion", "al", "er", "ic")


def _is_vowel(ch: str) -> bool:
    return ch in _VOWELS  # "Y" (a consonant y) is not


def _short_syllable(w: str, end: int) -> bool:
    """Snowball's ``shortv`` at ``end``: consonant-vowel-consonant (last not w, x or Y), or a word
    start of vowel-consonant."""
    if end >= 3 and not _is_vowel(w[end - 3]) and _is_vowel(w[end - 2]) \
            and not _is_vowel(w[end - 1]) and w[end - 1] not in "wxY":
        return True
    return end == 2 and _is_vowel(w[0]) and not _is_vowel(w[1])


def snowball_stem(word: str) -> str:
    """The Snowball English ("Porter2") stemmer, the one METEOR 1.5 uses for its stem module."""
    if word in _STEM_EXCEPTIONS:
        return _STEM_EXCEPTIONS[word]
    if len(word) < 3:
        return word
    w = word[1:] if word.startswith("'") else word
    # prelude: a y that acts as a consonant becomes Y
    w = ("Y" + w[1:]) if w.startswith("y") else w
    chars = list(w)
    for i in range(1, len(chars)):
        if chars[i] == "y" and _is_vowel(chars[i - 1]):
            chars[i] = "Y"
    w = "".join(chars)
    # regions R1, R2: after the first non-vowel that follows a vowel (and again)
    def region(start: int) -> int:
        for i in range(start + 1, len(w)):
            if not _is_vowel(w[i]) and _is_vowel(w[i - 1]):
                return i + 1
        return len(w)
    for prefix in ("gener", "commun", "arsen"):
        if w.startswith(prefix):
            p1 = len(prefix)
            break
    else:
        p1 = region(0)
    p2 = region(p1)
    # step 0 and 1a
    for suffix in ("'s'", "'s", "'"):
        if w.endswith(suffix):
            w = w[:-len(suffix)]
            break
    if w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("ied") or w.endswith("ies"):
        w = w[:-2] if len(w) > 4 else w[:-1]
    elif w.endswith("us") or w.endswith("ss"):
        pass
    elif w.endswith("s"):
        if any(_is_vowel(c) for c in w[:-2]):
            w = w[:-1]
    if w in _STEP1A_STOP:
        return w
    # step 1b
    for suffix in ("eedly", "ingly", "edly", "eed", "ing", "ed"):
        if w.endswith(suffix):
            stem = w[:-len(suffix)]
            if suffix in ("eed", "eedly"):
                if len(stem) >= p1:
                    w = stem + "ee"
            elif any(_is_vowel(c) for c in stem):
                w = stem
                if w.endswith(("at", "bl", "iz")):
                    w += "e"
                elif w.endswith(_DOUBLES):
                    w = w[:-1]
                elif len(w) == p1 and _short_syllable(w, len(w)):
                    w += "e"
            break
    # step 1c
    if len(w) > 2 and w[-1] in "yY" and not _is_vowel(w[-2]):
        w = w[:-1] + "i"
    # step 2
    for suffix, repl in _STEP2:
        if w.endswith(suffix):
            if len(w) - len(suffix) >= p1:
                stem = w[:-len(suffix)]
                if suffix == "ogi":
                    if stem.endswith("l"):
                        w = stem + repl
                elif suffix == "li":
                    if stem and stem[-1] in _VALID_LI:
                        w = stem
                else:
                    w = stem + repl
            break
    # step 3
    for suffix, repl in _STEP3:
        if w.endswith(suffix):
            start = len(w) - len(suffix)
            if start >= p1 and (suffix != "ative" or start >= p2):
                w = w[:start] + repl
            break
    # step 4
    for suffix in _STEP4:
        if w.endswith(suffix):
            start = len(w) - len(suffix)
            if start >= p2 and (suffix != "ion" or (start > 0 and w[start - 1] in "st")):
                w = w[:start]
            break
    # step 5
    if w.endswith("e"):
        start = len(w) - 1
        if start >= p2 or (start >= p1 and not _short_syllable(w, start)):
            w = w[:-1]
    elif w.endswith("l"):
        if len(w) - 1 >= p2 and w[-2:-1] == "l":
            w = w[:-1]
    return w.replace("Y", "y")


#: METEOR 1.5's English function words (``function/english.words`` in the jar)
METEOR_FUNCTION_WORDS = frozenset([
    'the', ',', '.', 'to', 'of', 'and', 'a', 'in', 'that', 'for', '"', 'is', 'on', "'s", 'it',
    'with', 'was', 'as', 'said', 'at', 'he', 'by', 'be', 'from', 'have', 'has', 'are', 'his',
    'but', 'an', 'this', 'not', 'i', 'will', '\u2019', 'they', ')', '-rrb-', '(', '-lrb-', 'who',
    'their', 'had', 'we', 'which', 'were', 'been', 'more', 'or', 's', 'its', 'would', 'about',
    'new', 'one', 'after', 'you', ':', 'also', 'up', 'when', 'there', 'than', '$', 'all', 'out',
    'her', 'people', 'she', 'year', 'two', '-', 'can', 'if', 'last', 'first', '\u201c', 'over',
    'other', '\u201d', 'into', 'some', 'what', 'so', '--', 'no', 'time', 'years', 'could', '?',
    "'t", '\u2014', "'"])
#: METEOR 1.5's English "rank" parameters (alpha, beta, gamma, delta) and module weights
METEOR_PARAMETERS = {"alpha": 0.85, "beta": 0.20, "gamma": 0.60, "delta": 0.75}
METEOR_WEIGHTS = {"exact": 1.0, "stem": 0.6, "synonym": 0.8, "paraphrase": 0.6}
_BEAM_SIZE = 40

# The jar's normaliser (``-norm``): Moses-style tokenisation of punctuation, with its non-breaking
# prefixes for English ("Mr." keeps its period; "No." only before a number)
_NBP_ANY = frozenset(
    list("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + "Adj Adm Adv Asst Bart Bldg Brig Bros Capt Cmdr Col Comdr "
    "Con Corp Cpl DR Dr Drs Ens Gen Gov Hon Hr Hosp Insp Lt MM MR MRS MS Maj Messrs Mlle Mme Mr "
    "Mrs Ms Msgr Op Ord Pfc Ph Prof Pvt Rep Reps Res Rev Rt Sen Sens Sfc Sgt Sr St Supt Surg v vs "
    "i.e rev e.g Nos Nr".split())
_NBP_NUMERIC = frozenset(["No", "Art", "pp"])
_M_ALPHA = "A-Za-z\u0160\u017d\u0161\u017e\u0178\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017e" \
           "\u0400-\u04ff\u0500-\u0527\ua640-\ua66e\ua67e-\ua697\u1d00-\u1d7f"
_M_ALNUM = "0-9" + _M_ALPHA
# every character but letters, digits, white space and . ' ` , - gets spaces around it
_M_SEPARATE = re.compile(f"([^{_M_ALNUM} \\t\\n\\x0b\\f\\r.'`,\\-\u2018\u2019])")
_M_COMMAS = [re.compile(r"([^0-9]),([^0-9])"), re.compile(r"([0-9]),([^0-9])"),
             re.compile(r"([^0-9]),([0-9])")]
_M_CONTRACTIONS = [
    (re.compile(f"([^{_M_ALPHA}])'([^{_M_ALPHA}])"), r"\1 ' \2"),
    (re.compile(f"([^{_M_ALPHA}0-9])'([{_M_ALPHA}])"), r"\1 ' \2"),
    (re.compile(f"([{_M_ALPHA}])'([^{_M_ALPHA}])"), r"\1 ' \2"),
    (re.compile(f"([{_M_ALPHA}])'([{_M_ALPHA}])"), r"\1 '\2"),
    (re.compile(r"([0-9])'(s)"), r"\1 '\2"),
]
_M_RM_DASH = re.compile(f"([{_M_ALNUM}.])-([{_M_ALNUM}])")
_M_WHITE = re.compile("[ \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\u0085]+")


def meteor_normalize(line: str) -> str:
    """METEOR 1.5's ``-norm`` normaliser for English (``Normalizer.normalizeLine`` with
    punctuation kept), followed by the lower-casing that ``-norm`` implies."""
    s = " " + line + " "
    s = _M_SEPARATE.sub(r" \1 ", s)
    s = re.sub(r"\.([.]+)", r" DOTMULTI\1", s)
    while "DOTMULTI." in s:
        s = re.sub(r"DOTMULTI\.([^.])", r"DOTDOTMULTI \1", s)
        s = s.replace("DOTMULTI.", "DOTDOTMULTI")
    for pattern in _M_COMMAS:
        s = pattern.sub(r"\1 , \2", s)
    s = re.sub("[`\u2018\u2019]", "'", s)
    s = re.sub("[\u201c\u201d]|''", ' " ', s)
    s = s.replace("\u2013", "-").replace("--", "-")
    s = _M_RM_DASH.sub(r"\1 \2", s)
    for pattern, repl in _M_CONTRACTIONS:
        s = pattern.sub(repl, s)
    words = s.split()
    out = []
    for i, word in enumerate(words):
        if len(word) > 1 and word.endswith("."):
            pre = word[:-1]
            following = words[i + 1] if i + 1 < len(words) else ""
            if "." in pre and re.search(f"[{_M_ALPHA}]", pre):
                out.append(word.replace(".", ""))  # U.S. -> US
            elif pre in _NBP_ANY or re.match("[a-z]", following):
                out.append(word)
            elif pre in _NBP_NUMERIC and re.match("[0-9]+", following):
                out.append(word)
            else:
                out.append(pre + " .")
        else:
            out.append(word)
    s = " ".join(out) + " "
    while "DOTDOTMULTI" in s:
        s = s.replace("DOTDOTMULTI", "DOTMULTI.")
    s = s.replace("DOTMULTI", ".")
    return _M_WHITE.sub(" ", s).strip().lower()


class _WordNet:
    """The WordNet synonym sets METEOR 1.5 ships inside its jar (``synonym/english.*``), with the
    jar's morphology (exception lists, then WordNet's suffix rules)."""

    _SUFFIXES = ("s", "ses", "xes", "zes", "ches", "shes", "men", "ies", "s", "ies", "es", "es",
                 "ed", "ed", "ing", "ing", "er", "est", "er", "est")
    _ENDINGS = ("", "s", "x", "z", "ch", "sh", "man", "y", "", "y", "e", "", "e", "", "e", "", "",
                "", "e", "e")

    def __init__(self, synsets: str, exceptions: str):
        lines = synsets.split("\n")
        self.synsets = dict(zip(lines[0::2], lines[1::2]))  # word -> "id id ..."
        self.bases: dict[str, list[str]] = {}
        lines = exceptions.split("\n")
        for base, forms in zip(lines[0::2], lines[1::2]):
            for form in forms.split():
                self.bases.setdefault(form, []).append(base)
        self._cache: dict[str, frozenset[str]] = {}

    def _sets(self, word: str) -> set[str]:
        return set(self.synsets.get(word, "").split())

    def _morph(self, word: str) -> str:
        end = "ful" if word.endswith("ful") else ""
        if word.endswith("ss") or len(word) <= 2:
            return word
        for suffix, ending in zip(self._SUFFIXES, self._ENDINGS):
            if word.endswith(suffix):
                base = word[:len(word) - len(suffix)] + ending
                if base in self.synsets:
                    return base + end
        return ""

    def synonym_sets(self, word: str) -> frozenset[str]:
        """The synsets of ``word`` and of its base forms (``getSynSets`` + ``getStemSynSets``)."""
        if word not in self._cache:
            sets = self._sets(word)
            if word in self.bases:
                for base in self.bases[word]:
                    sets |= self._sets(base)
            else:
                sets |= self._sets(self._morph(word))
            self._cache[word] = frozenset(sets)
        return self._cache[word]


_WORDNET: list = []  # [] not loaded yet, [None] unavailable, [_WordNet] loaded


def _meteor_jar() -> str | None:
    """Path of pycocoevalcap's METEOR 1.5 jar, if pycocoevalcap is installed."""
    import importlib.util
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:  # a namespace package: no __init__.py
        path = os.path.join(folder, "meteor", "meteor-1.5.jar")
        if os.path.exists(path):
            return path
    return None


def _wordnet() -> _WordNet | None:
    """WordNet synsets from the METEOR jar (read as a zip; no Java needed), or None."""
    if not _WORDNET:
        import zipfile
        jar = _meteor_jar()
        if jar is None:
            _WORDNET.append(None)
        else:
            with zipfile.ZipFile(jar) as z:
                _WORDNET.append(_WordNet(z.read("synonym/english.synsets").decode("utf-8"),
                                         z.read("synonym/english.exceptions").decode("utf-8")))
    return _WORDNET[0]


class _Path:
    """A partial alignment in METEOR's beam search (``PartialAlignment``)."""

    __slots__ = ("matches", "used1", "used2", "rank", "chunks", "idx", "last_end", "distance")

    def __init__(self, n1: int, n2: int):
        self.matches: list = [None] * n2
        self.used1, self.used2 = [False] * n1, [False] * n2
        self.rank = self.chunks = self.idx = self.distance = 0
        self.last_end = -1

    def copy(self) -> "_Path":
        new = _Path.__new__(_Path)
        new.matches, new.used1, new.used2 = self.matches[:], self.used1[:], self.used2[:]
        new.rank, new.chunks, new.idx = self.rank, self.chunks, self.idx
        new.last_end, new.distance = self.last_end, self.distance
        return new

    def take(self, match: tuple[int, int, int, int, int], rank: int) -> None:
        """Add the statistics of a chosen match (reference start, length, test start, length,
        module) as the aligner does, except its distance update."""
        j, n2, i, n1, _ = match
        self.rank += rank
        if self.last_end != -1 and i != self.last_end:
            self.chunks += 1
        self.idx, self.last_end = j + n2, i + n1


def _path_key(p: _Path) -> tuple[int, int, int]:
    # ``PARTIAL_COMPARE_TOTAL``: more (weighted) matches, then fewer chunks, then less distance
    return (-p.rank, p.chunks, p.distance)


def _candidate_matches(test: list[str], ref: list[str], modules: tuple[str, ...],
                       resources: dict) -> tuple[list[list[tuple]], list[int], list[int]]:
    """Every possible match, grouped by reference start position, in the order the jar's
    matchers add them, and how many matches start at each test and reference position."""
    n1, n2 = len(test), len(ref)
    candidates: list[list[tuple]] = [[] for _ in range(n2)]
    cover1, cover2 = [0] * n1, [0] * n2

    def add(j: int, n_ref: int, i: int, n_test: int, module: int) -> None:
        candidates[j].append((j, n_ref, i, n_test, module))
        for k in range(i, i + n_test):
            cover1[k] += 1
        for k in range(j, j + n_ref):
            cover2[k] += 1

    for module_id, module in enumerate(modules):
        if module == "exact":
            for j in range(n2):
                for i in range(n1):
                    if test[i] == ref[j]:
                        add(j, 1, i, 1, module_id)
        elif module == "stem":
            s1, s2 = [snowball_stem(w) for w in test], [snowball_stem(w) for w in ref]
            for j in range(n2):
                for i in range(n1):
                    if s1[i] == s2[j] and test[i] != ref[j]:
                        add(j, 1, i, 1, module_id)
        elif module == "synonym" and resources.get("wordnet") is not None:
            wn = resources["wordnet"]
            s1, s2 = [wn.synonym_sets(w) for w in test], [wn.synonym_sets(w) for w in ref]
            for j in range(n2):
                for i in range(n1):
                    if test[i] != ref[j] and not s1[i].isdisjoint(s2[j]):
                        add(j, 1, i, 1, module_id)
        elif module == "paraphrase" and resources.get("paraphrase") is not None:
            table, longest = resources["paraphrase"]
            for j in range(n2):  # reference phrases whose paraphrase occurs in the test
                for length in range(1, min(longest, n2 - j) + 1):
                    for para in table.get(tuple(ref[j:j + length]), ()):
                        for i in range(n1 - len(para) + 1):
                            if tuple(test[i:i + len(para)]) == para:
                                add(j, length, i, len(para), module_id)
            for i in range(n1):  # and the other way round
                for length in range(1, min(longest, n1 - i) + 1):
                    for para in table.get(tuple(test[i:i + length]), ()):
                        for j in range(n2 - len(para) + 1):
                            if tuple(ref[j:j + len(para)]) == para:
                                add(j, len(para), i, length, module_id)
    return candidates, cover1, cover2


def _align(test: list[str], ref: list[str], modules: tuple[str, ...], resources: dict,
           ) -> tuple[list, int]:
    """METEOR 1.5's aligner: all candidate matches, the definite ones (the only match at their
    positions) fixed, then a beam search over reference positions that keeps the paths with the
    most matches, then the fewest chunks. Returns the best alignment (a match or None at each
    reference position where a match starts) and its number of chunks."""
    n1, n2 = len(test), len(ref)
    used_modules = modules[:1] if test == ref else modules  # identical: exact matches only
    candidates, cover1, cover2 = _candidate_matches(test, ref, used_modules, resources)
    # the aligner ranks paths by match sizes times weights 1 / 0.5 / 0.5 / 0.5 added to *int*
    # counters, which Java truncates: a one-word stem or synonym match adds nothing
    weights = [1.0 if m == "exact" else 0.5 for m in used_modules]
    start = _Path(n1, n2)
    for j, cands in enumerate(candidates):  # one-to-one, non-overlapping matches are definite
        if len(cands) == 1:
            _, n_ref, i, n_test, _ = cands[0]
            alone = all(c == 1 for c in cover2[j:j + n_ref] + cover1[i:i + n_test])
            if alone:
                start.matches[j] = cands[0]
                start.used2[j:j + n_ref] = [True] * n_ref
                start.used1[i:i + n_test] = [True] * n_test
    paths = [start]
    for current in range(n2 + 1):
        paths.sort(key=_path_key)
        nxt = []
        for path in paths[:_BEAM_SIZE]:
            if current == n2:
                if path.last_end != -1:
                    path.chunks += 1
                nxt.append(path)
                continue
            if path.used2[current]:
                if current < path.idx:
                    nxt.append(path)
                elif path.matches[path.idx] is not None:
                    m = path.matches[path.idx]
                    w = weights[m[4]]
                    path.take(m, int(m[3] * w) + int(m[1] * w))
                    path.distance += abs(m[0] - m[2])
                    nxt.append(path)
                continue
            for m in candidates[current]:
                j, n_ref, i, n_test, mod = m
                if any(path.used2[j:j + n_ref]) or any(path.used1[i:i + n_test]):
                    continue
                new = path.copy()
                new.used2[j:j + n_ref] = [True] * n_ref
                new.used1[i:i + n_test] = [True] * n_test
                new.matches[current] = m
                new.take(m, int(n_test * weights[mod]) + int(n_ref * weights[mod]))
                path.distance += abs(j - i)  # sic: the jar adds the distance to the parent path
                nxt.append(new)
            if path.last_end != -1:  # or leave this reference word unmatched
                path.chunks += 1
                path.last_end = -1
            path.idx += 1
            nxt.append(path)
        paths = nxt or paths[:1]
    paths.sort(key=_path_key)
    best = paths[0].matches
    chunks, last_end, idx = 0, -1, 0  # recount chunks on the final alignment, as the jar does
    while idx < n2:
        m = best[idx]
        if m is None:
            if last_end != -1:
                chunks += 1
                last_end = -1
            idx += 1
        else:
            if last_end != -1 and m[2] != last_end:
                chunks += 1
            idx, last_end = m[0] + m[1], m[2] + m[3]
    if last_end != -1:
        chunks += 1
    return best, chunks


def _meteor_stats(test: list[str], ref: list[str], modules: tuple[str, ...], resources: dict,
                  ) -> np.ndarray:
    """METEOR's sufficient statistics of one test/reference pair, as a float vector:
    [test len, ref len, test function words, ref function words, then per module (test
    content, ref content, test function, ref function) matched words, chunks]."""
    best, chunks = _align(test, ref, modules, resources)
    stats = np.zeros(5 + 4 * len(modules))
    stats[0], stats[1] = len(test), len(ref)
    stats[2] = sum(w in METEOR_FUNCTION_WORDS for w in test)
    stats[3] = sum(w in METEOR_FUNCTION_WORDS for w in ref)
    for m in best:
        if m is not None:
            j, n_ref, i, n_test, mod = m
            for w in test[i:i + n_test]:
                stats[4 + 4 * mod + (2 if w in METEOR_FUNCTION_WORDS else 0)] += 1
            for w in ref[j:j + n_ref]:
                stats[5 + 4 * mod + (2 if w in METEOR_FUNCTION_WORDS else 0)] += 1
    stats[-1] = chunks
    return stats


def _meteor_score(stats: np.ndarray, weights: list[float]) -> float:
    """``MeteorScorer.computeMetrics``: weighted precision and recall (content words weigh
    ``delta``, function words ``1 - delta``), their harmonic F-mean weighted by ``alpha``, and the
    fragmentation penalty ``gamma (chunks / mean matches)^beta``."""
    a, b, g, d = (METEOR_PARAMETERS[k] for k in ("alpha", "beta", "gamma", "delta"))
    test_len, ref_len, test_fn, ref_fn = (float(x) for x in stats[:4])
    n_mod = len(weights)
    tc, rc = stats[4:4 + 4 * n_mod:4], stats[5:5 + 4 * n_mod:4]
    tf, rf = stats[6:6 + 4 * n_mod:4], stats[7:7 + 4 * n_mod:4]
    chunks = float(stats[-1])
    test_wl = d * (test_len - test_fn) + (1.0 - d) * test_fn
    ref_wl = d * (ref_len - ref_fn) + (1.0 - d) * ref_fn
    test_wm = ref_wm = 0.0
    for i in range(n_mod):
        test_wm += tc[i] * weights[i] * d
    for i in range(n_mod):
        ref_wm += rc[i] * weights[i] * d
    for i in range(n_mod):
        test_wm += tf[i] * weights[i] * (1.0 - d)
    for i in range(n_mod):
        ref_wm += rf[i] * weights[i] * (1.0 - d)
    test_total, ref_total = float(tc.sum() + tf.sum()), float(rc.sum() + rf.sum())  # word matches
    with np.errstate(all="ignore"):  # the jar divides by zero freely and maps NaN to 0
        precision = np.float64(test_wm) / np.float64(test_wl)
        recall = np.float64(ref_wm) / np.float64(ref_wl)
        fmean = 1.0 / (((1.0 - a) / precision) + (a / recall))
        if test_total == test_len and ref_total == ref_len and chunks == 1:
            frag = np.float64(0.0)
        else:
            frag = np.float64(chunks) / (np.float64(test_total + ref_total) / 2)
        score = fmean * (1.0 - g * np.power(frag, b))
    return 0.0 if np.isnan(score) else max(float(score), 0.0)


_PARAPHRASES: dict = {"vocab": frozenset(), "table": {}, "longest": 0}


def _paraphrase_file() -> str | None:
    jar = _meteor_jar()
    path = None if jar is None else os.path.join(os.path.dirname(jar), "data", "paraphrase-en.gz")
    return path if path is not None and os.path.exists(path) else None


def _paraphrases(vocab: set[str]) -> tuple[dict, int] | None:
    """The entries of METEOR's English paraphrase table whose two phrases only use words of
    ``vocab`` (no other entry can match), as ``{phrase: [paraphrases in file order]}`` and the
    longest phrase length; None without pycocoevalcap. The 61 MB table is streamed once per
    new vocabulary (seconds) and the filtered entries are kept for later calls."""
    path = _paraphrase_file()
    if path is None:
        return None
    if not vocab <= _PARAPHRASES["vocab"]:
        vocab = set(vocab) | _PARAPHRASES["vocab"]
        keep = {w.encode("utf-8") for w in vocab}
        table: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
        inflate = zlib.decompressobj(31)  # gzip
        rest, line_no = b"", 0
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 22)
                data = rest + (inflate.decompress(block) if block else inflate.flush())
                lines = data.split(b"\n")
                rest = lines.pop() if block else b""
                # entries are three lines: probability, phrase, paraphrase
                first = (-line_no) % 3
                usable = (len(lines) - first) // 3 * 3
                phrases = lines[first + 1:first + usable:3]
                paraphrases = lines[first + 2:first + usable:3]
                for a, b in zip(phrases, paraphrases):
                    wa = a.split()
                    if keep.issuperset(wa):
                        wb = b.split()
                        if keep.issuperset(wb):
                            table.setdefault(tuple(w.decode() for w in wa), []).append(
                                tuple(w.decode() for w in wb))
                rest = b"\n".join(lines[first + usable:] + [rest]) if block else rest
                line_no += first + usable
                if not block:
                    break
        longest = max((len(k) for k in table), default=0)
        _PARAPHRASES.update(vocab=frozenset(vocab), table=table, longest=longest)
    return _PARAPHRASES["table"], _PARAPHRASES["longest"]


METEOR_MODULES: tuple[str, ...] = ("exact", "stem", "synonym", "paraphrase")


def meteor_resources(vocabulary: set[str], modules: tuple[str, ...] = METEOR_MODULES) -> dict:
    """The data METEOR's synonym and paraphrase matchers need for sentences over ``vocabulary``:
    ``{"wordnet": ..., "paraphrase": ...}`` (each None without pycocoevalcap's copy of the jar's
    data). The paraphrase table is read once per new vocabulary. Built in §42.2."""
    resources: dict = {}
    if "synonym" in modules:
        resources["wordnet"] = _wordnet()
    if "paraphrase" in modules:
        resources["paraphrase"] = _paraphrases(set(vocabulary))
    return resources


def meteor_align(test: list[str], ref: list[str], modules: tuple[str, ...] = METEOR_MODULES,
                 resources: dict | None = None) -> tuple[list[tuple[int, int, int, int, int]], int]:
    """METEOR 1.5's alignment of a candidate and a reference, both lists of normalised tokens
    (:func:`meteor_normalize`): the matches as ``(reference start, reference length, test start,
    test length, index into modules)`` in reference order, and the number of chunks. ``resources``
    from :func:`meteor_resources` (built for these words when not given). Built in §42.2."""
    unknown = [m for m in modules if m not in METEOR_WEIGHTS]
    if unknown:
        raise ValueError(f"unknown METEOR modules {unknown}, expected some of {METEOR_MODULES}")
    if resources is None:
        resources = meteor_resources(set(test) | set(ref), modules)
    alignment, chunks = _align(test, ref, tuple(modules), resources)
    return [m for m in alignment if m is not None], chunks


def _meteor_python(cands: list[str], refs: list[list[str]], modules: tuple[str, ...],
                   ) -> tuple[float, list[float]]:
    """Score every candidate against its best reference; the corpus score comes from the summed
    statistics of those best pairs (chunks of perfect matches left out), as the jar's EVAL."""
    tests = [meteor_normalize(c.replace("|||", "").replace("  ", " ")).split() for c in cands]
    references = [[meteor_normalize(r).split() for r in rs] for rs in refs]
    vocab = set(chain.from_iterable(tests)) | {w for rs in references for r in rs for w in r}
    resources = meteor_resources(vocab, modules)
    weights = [METEOR_WEIGHTS[m] for m in modules]
    per_item = []
    total = np.zeros(5 + 4 * len(modules))
    for test, rs in zip(tests, references):
        best_stats, best_score = None, -1.0
        for ref in rs:
            stats = _meteor_stats(test, ref, modules, resources)
            score = _meteor_score(stats, weights)
            if score > best_score:
                best_stats, best_score = stats, score
        per_item.append(best_score)
        perfect = (best_stats[4:-1:2].sum() == best_stats[0]
                   and best_stats[5:-1:2].sum() == best_stats[1] and best_stats[-1] == 1)
        total[:-1] += best_stats[:-1]
        if not perfect:  # the jar leaves perfect matches out of the corpus chunk count
            total[-1] += best_stats[-1]
    return _meteor_score(total, weights), per_item


def _meteor_jar_scores(cands: list[str], refs: list[list[str]], modules: tuple[str, ...],
                       ) -> tuple[float, list[float]]:
    """Run the official METEOR 1.5 jar (pycocoevalcap's copy) with pycocoevalcap's arguments and
    stdio protocol: one SCORE line per item, then one EVAL line with all statistics. Modules other
    than the jar's default four are passed with ``-m``."""
    import shutil
    import subprocess
    jar = _meteor_jar()
    if jar is None or shutil.which("java") is None:
        raise ValueError("backend='jar' needs Java and pycocoevalcap (which ships meteor-1.5.jar)")
    lines = [" ||| ".join(("SCORE", " ||| ".join(rs), c.replace("|||", "").replace("  ", " ")))
             for c, rs in zip(cands, refs)]
    args = ["java", "-jar", "-Xmx2G", os.path.basename(jar), "-", "-", "-stdio", "-l", "en",
            "-norm"]
    if tuple(modules) != ("exact", "stem", "synonym", "paraphrase"):
        args += ["-m", " ".join(modules)]
    proc = subprocess.Popen(args, cwd=os.path.dirname(jar),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stats = []
    for line in lines:  # the jar answers each SCORE line before reading the next
        proc.stdin.write((line + "\n").encode())
        proc.stdin.flush()
        stats.append(proc.stdout.readline().decode().strip())
    proc.stdin.write(("EVAL ||| " + " ||| ".join(stats) + "\n").encode())
    proc.stdin.flush()
    per_item = [float(proc.stdout.readline().strip()) for _ in lines]
    corpus = float(proc.stdout.readline().strip())
    proc.stdin.close()
    proc.kill()
    proc.wait()
    return corpus, per_item


def meteor(candidates: list[str], references: list[list[str]], tokenize: bool = True,
           backend: str = "python",
           modules: tuple[str, ...] = METEOR_MODULES,
           ) -> tuple[float, list[float]]:
    """METEOR 1.5 of each candidate against its references (the best-scoring reference counts).

    ``backend="python"`` (default) re-implements the jar that pycocoevalcap runs (``-l en
    -norm``): its normaliser, its four matchers (exact words, Snowball stems, WordNet synonyms,
    paraphrases from its phrase table), its beam-search aligner (most matches, then fewest
    chunks, with the jar's integer rounding of the match weights and its other quirks), and the
    English "rank" parameters alpha=0.85, beta=0.2, gamma=0.6, delta=0.75 with module weights
    1.0 / 0.6 / 0.8 / 0.6. It agrees with the jar to ~1e-16 per caption. The synonym and
    paraphrase data are read from pycocoevalcap's copy of the jar and its ``paraphrase-en.gz``
    (no Java needed); without pycocoevalcap only the exact and stem modules can match, and the
    scores are lower where synonyms or paraphrases would have matched. Loading the paraphrases
    streams a 61 MB table (a few seconds, once per process and vocabulary); pass
    ``modules=("exact", "stem", "synonym")`` to skip that module. ``backend="jar"`` runs the jar
    itself (needs Java; with fewer modules it passes ``-m``).

    Returns ``(corpus, per_item)``: the corpus score is computed from the summed statistics of
    each item's best reference, as the jar does (not the mean of item scores). Built in §42.2.
    """
    if backend not in ("python", "jar"):
        raise ValueError(f"expected backend 'python' or 'jar', got {backend!r}")
    allowed = ("exact", "stem", "synonym", "paraphrase")
    if not modules or tuple(modules) != allowed[:len(modules)]:
        raise ValueError(f"expected modules to be a prefix of {allowed}, got {modules!r}")
    cands, refs = _prepare(candidates, references, tokenize)
    if backend == "jar":
        return _meteor_jar_scores(cands, refs, tuple(modules))
    return _meteor_python(cands, refs, tuple(modules))


# --------------------------------------------------------------------------------------------
# SPICE on ShapesWorld
# --------------------------------------------------------------------------------------------

_SIZE_NORMAL = {"small": "small", "little": "small", "tiny": "small", "large": "large",
                "big": "large"}


def _shapes_vocabulary() -> tuple[re.Pattern, dict[str, str]]:
    from mmcourse.data.shapes import COLORS, RELATION_TEXT, SHAPES
    np_pattern = (rf"(?:(?:a|an|the) )?(?:({'|'.join(_SIZE_NORMAL)}) )?(?:({'|'.join(COLORS)}) )?"
                  rf"({'|'.join(SHAPES)})s?\b")
    relations = {text: name for name, text in RELATION_TEXT.items()}
    return re.compile(rf"\b{np_pattern}"), relations


def shapes_caption_graph(caption: str) -> set[tuple[str, ...]]:
    """SPICE tuples of a ShapesWorld caption, parsed with the grammar that generates them:
    ``(shape,)``, ``(shape, colour)``, ``(shape, size)`` for each noun phrase "[a|an] [size]
    colour shape" (size words normalised: little/tiny -> small, big -> large), and
    ``(shape, relation, shape)`` when a relation ("to the left of", "above", ...) joins two noun
    phrases. Built in §42.2."""
    pattern, relations = _shapes_vocabulary()
    text = " ".join(ptb_tokenize(caption).split())
    tuples: set[tuple[str, ...]] = set()
    phrases = list(pattern.finditer(text))
    for k, m in enumerate(phrases):
        size, colour, shape = m.groups()
        tuples.add((shape,))
        if colour:
            tuples.add((shape, colour))
        if size:
            tuples.add((shape, _SIZE_NORMAL[size]))
        if k + 1 < len(phrases):
            between = text[m.end():phrases[k + 1].start()].strip()
            if between in relations:
                tuples.add((shape, relations[between], phrases[k + 1].group(3)))
    return tuples


def scene_graph_tuples(graph: dict) -> set[tuple[str, ...]]:
    """SPICE tuples of a ShapesWorld scene graph (``scene.graph``): objects, their attributes
    (colour, size) and every relation between them."""
    if not isinstance(graph, dict) or "objects" not in graph or "relations" not in graph:
        raise ValueError("expected a scene graph {'objects': [...], 'relations': [...]}, "
                         f"got {graph!r:.80}")
    names = [o["name"] for o in graph["objects"]]
    tuples = {(n,) for n in names}
    tuples |= {(o["name"], a) for o in graph["objects"] for a in o["attributes"]}
    tuples |= {(names[r["subject"]], r["predicate"], names[r["object"]])
               for r in graph["relations"]}
    return tuples


def _f_score(test: set, ref: set) -> float:
    matched = len(test & ref)
    if matched == 0:
        return 0.0
    p, r = matched / len(test), matched / len(ref)
    return 2 * p * r / (p + r)


def spice(candidates: list[str], references: list[list[str]] | None = None,
          graphs: list[dict] | None = None) -> tuple[float, list[float]]:
    """SPICE (Anderson et al. 2016) for ShapesWorld: the F-score between the tuples of the
    candidate's scene graph and those of the reference graph, averaged over items.

    The candidate is parsed with :func:`shapes_caption_graph`. The reference graph is the union of
    the parsed ``references`` (as SPICE merges its reference captions), or, with ``graphs``, the
    scene's own graph (``scene.graph``; it lists every relation that holds, so recall is lower).
    Tuples match when their words are equal after normalisation (SPICE also accepts WordNet
    synonyms; in ShapesWorld the size synonyms are normalised instead). An item with no tuple in
    common scores 0. Returns ``(mean, per_item)``. Built in §42.2.
    """
    if (references is None) == (graphs is None):
        raise ValueError("expected exactly one of references (captions) or graphs (scene graphs)")
    if references is not None:
        _check_captions(candidates, references)
        ref_tuples = [set().union(*(shapes_caption_graph(r) for r in rs)) for rs in references]
    else:
        if isinstance(candidates, str) or len(candidates) != len(graphs) or len(graphs) == 0:
            raise ValueError(f"expected one scene graph per candidate, got {len(graphs)} graphs "
                             f"for {len(candidates)} candidates")
        ref_tuples = [scene_graph_tuples(g) for g in graphs]
    per_item = [_f_score(shapes_caption_graph(c), t) for c, t in zip(candidates, ref_tuples)]
    return float(np.mean(per_item)), per_item
