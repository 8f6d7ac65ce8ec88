//! Reply text as it should be spoken: numbers, units, times and abbreviations in words
//! ("21.5 °C" → "twenty one and a half degrees"), and no markdown. Voices read digits and
//! symbols badly or not at all, and a reply is heard, never seen, while driving.

/// Markdown and list marks an LLM may write: said aloud they are noise.
fn is_markup(c: char) -> bool {
    matches!(c, '*' | '#' | '`' | '_' | '|')
}

/// `text` without the marks an LLM may write, for a voice that reads the language's numbers
/// itself.
pub fn unmarked(text: &str) -> String {
    text.chars()
        .filter(|c| !is_markup(*c))
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// `text` with numbers, units, times and abbreviations written out for a voice.
pub fn speakable(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let word_start = i == 0 || !chars[i - 1].is_alphanumeric();
        let minus = (c == '-' || c == '−')
            && word_start
            && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c.is_ascii_digit() && word_start || minus {
            i = number(&chars, i, &mut out);
            continue;
        }
        if word_start && c.is_alphabetic() {
            if let Some((len, words)) = abbreviation(&chars[i..]) {
                out.push_str(words);
                i += len;
                continue;
            }
        }
        match c {
            c if is_markup(c) => {}
            '&' => out.push_str(" and "),
            '%' => out.push_str(" percent"),
            '°' => out.push_str(" degrees"),
            '\n' => out.push(' '),
            _ => out.push(c),
        }
        i += 1;
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads the number at `chars[start]` (a time, ordinal, decimal or integer, with its unit)
/// into `out`; returns where the text goes on.
fn number(chars: &[char], start: usize, out: &mut String) -> usize {
    let mut i = start;
    let negative = !chars[i].is_ascii_digit();
    if negative {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let from = *i;
        while *i < chars.len()
            && (chars[*i].is_ascii_digit()
                // Thousands separators: "1,200" (a comma then exactly three digits).
                || chars[*i] == ','
                    && chars.len() > *i + 3
                    && chars[*i + 1..*i + 4].iter().all(char::is_ascii_digit)
                    && chars.get(*i + 4).is_none_or(|c| !c.is_ascii_digit()))
        {
            *i += 1;
        }
        chars[from..*i]
            .iter()
            .filter(|c| c.is_ascii_digit())
            .collect::<String>()
    };
    let whole = digits(&mut i);
    let sign = if negative { "minus " } else { "" };
    let n = match whole.parse::<u64>() {
        Ok(n) if whole.len() <= QUANTITY_DIGITS => n,
        // Too long to be a quantity (a phone number, a code): digit by digit.
        _ => {
            out.push_str(sign);
            out.push_str(&digit_by_digit(&whole));
            return i;
        }
    };
    // A time: "14:30", "8:05".
    if chars.get(i) == Some(&':')
        && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        && chars.get(i + 2).is_some_and(char::is_ascii_digit)
        && chars.get(i + 3).is_none_or(|c| !c.is_ascii_digit())
        && n < 24
        && !negative
    {
        let minutes: u64 = chars[i + 1..i + 3]
            .iter()
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        out.push_str(&time(n, minutes));
        return i + 3;
    }
    // An ordinal: "1st", "22nd".
    let rest: String = chars[i..].iter().take(2).collect::<String>().to_lowercase();
    if ["st", "nd", "rd", "th"].contains(&rest.as_str())
        && chars.get(i + 2).is_none_or(|c| !c.is_alphanumeric())
    {
        out.push_str(sign);
        out.push_str(&ordinal(n));
        return i + 2;
    }
    let mut spoken = format!("{sign}{}", cardinal(n));
    let mut plural = n != 1;
    // "0.5": "a half", or "half a" before a unit.
    let mut half = false;
    if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
        i += 1;
        let from = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        let fraction: String = chars[from..i].iter().collect();
        let fraction = fraction.trim_end_matches('0');
        plural = true;
        match (fraction, n) {
            ("", _) => plural = n != 1,
            ("5", 0) => half = true,
            ("5", _) => spoken.push_str(" and a half"),
            ("25", _) if n > 0 => spoken.push_str(" and a quarter"),
            ("75", _) if n > 0 => spoken.push_str(" and three quarters"),
            (f, _) => {
                spoken.push_str(" point ");
                spoken.push_str(&digit_by_digit(f));
            }
        }
    }
    match (unit(chars, i), half) {
        (Some((next, one, _)), true) => {
            out.push_str(&format!("{sign}half a {one}"));
            next
        }
        (None, true) => {
            out.push_str(&format!("{sign}a half"));
            i
        }
        (Some((next, one, many)), false) => {
            out.push_str(&format!("{spoken} {}", if plural { many } else { one }));
            next
        }
        (None, false) => {
            out.push_str(&spoken);
            i
        }
    }
}

/// The unit right after a number ("21 °C", "80km/h", "45%"): where the text goes on, and
/// the unit's name in the singular and the plural.
fn unit(chars: &[char], start: usize) -> Option<(usize, &'static str, &'static str)> {
    const UNITS: &[(&str, &str, &str)] = &[
        ("km/h", "kilometre per hour", "kilometres per hour"),
        ("kph", "kilometre per hour", "kilometres per hour"),
        ("mph", "mile per hour", "miles per hour"),
        ("°C", "degree", "degrees"),
        ("°F", "degree Fahrenheit", "degrees Fahrenheit"),
        ("°", "degree", "degrees"),
        ("%", "percent", "percent"),
        ("kWh", "kilowatt hour", "kilowatt hours"),
        ("kW", "kilowatt", "kilowatts"),
        ("km", "kilometre", "kilometres"),
        ("mi", "mile", "miles"),
        ("MHz", "megahertz", "megahertz"),
        ("kHz", "kilohertz", "kilohertz"),
        ("bar", "bar", "bar"),
        ("psi", "psi", "psi"),
        ("min", "minute", "minutes"),
        ("h", "hour", "hours"),
        ("m", "metre", "metres"),
        ("l", "litre", "litres"),
        ("L", "litre", "litres"),
        ("s", "second", "seconds"),
    ];
    let mut i = start;
    if chars.get(i) == Some(&' ') {
        i += 1;
    }
    for (symbol, one, many) in UNITS {
        let len = symbol.chars().count();
        let matches = chars.len() >= i + len
            && chars[i..i + len].iter().copied().eq(symbol.chars())
            && chars.get(i + len).is_none_or(|c| !c.is_alphanumeric());
        if matches {
            return Some((i + len, one, many));
        }
    }
    None
}

/// Abbreviations at the start of a word: (characters consumed, words).
fn abbreviation(chars: &[char]) -> Option<(usize, &'static str)> {
    const WORDS: &[(&str, &str)] = &[
        ("e.g.", "for example"),
        ("i.e.", "that is"),
        ("etc.", "and so on"),
        ("approx.", "about"),
        ("vs.", "versus"),
        ("Mr.", "mister"),
        ("Mrs.", "missus"),
        ("Dr.", "doctor"),
        ("St.", "Street"),
        ("Ave.", "Avenue"),
        ("Rd.", "Road"),
        ("No.", "number"),
    ];
    for (abbr, words) in WORDS {
        let len = abbr.chars().count();
        if chars.len() >= len && chars[..len].iter().copied().eq(abbr.chars()) {
            // "No." only before a number ("No. 5"); otherwise it is the word "no".
            if *abbr == "No."
                && !chars[len..]
                    .iter()
                    .find(|c| **c != ' ')
                    .is_some_and(char::is_ascii_digit)
            {
                continue;
            }
            return Some((len, words));
        }
    }
    None
}

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// 21 → "twenty one", 1200 → "one thousand two hundred"; from a thousand trillion up, digit
/// by digit (there are no words for it here).
pub fn cardinal(n: u64) -> String {
    fn under_thousand(n: u64, words: &mut Vec<&'static str>) {
        if n >= 100 {
            words.push(ONES[(n / 100) as usize]);
            words.push("hundred");
        }
        let rest = n % 100;
        if rest >= 20 {
            words.push(TENS[(rest / 10) as usize]);
            if !rest.is_multiple_of(10) {
                words.push(ONES[(rest % 10) as usize]);
            }
        } else if rest > 0 || n == 0 {
            words.push(ONES[rest as usize]);
        }
    }
    if n == 0 {
        return "zero".into();
    }
    if n >= 1_000_000_000_000_000 {
        return digit_by_digit(&n.to_string());
    }
    let mut words = Vec::new();
    let mut rest = n;
    for (scale, name) in [
        (1_000_000_000_000, "trillion"),
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ] {
        if rest >= scale {
            under_thousand(rest / scale, &mut words);
            words.push(name);
            rest %= scale;
        }
    }
    if rest > 0 {
        under_thousand(rest, &mut words);
    }
    words.join(" ")
}

/// 1 → "first", 22 → "twenty second".
fn ordinal(n: u64) -> String {
    let words = cardinal(n);
    let (head, last) = match words.rsplit_once(' ') {
        Some((h, l)) => (format!("{h} "), l.to_string()),
        None => (String::new(), words),
    };
    let last = match last.as_str() {
        "one" => "first".into(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        l if l.ends_with('y') => format!("{}ieth", &l[..l.len() - 1]),
        l => format!("{l}th"),
    };
    head + &last
}

/// "14:30" → "two thirty p m", "8:05" → "eight oh five a m", "12:00" → "twelve o'clock".
fn time(hours: u64, minutes: u64) -> String {
    let h12 = match hours % 12 {
        0 => 12,
        h => h,
    };
    let minutes = match minutes {
        0 => "o'clock".to_string(),
        m if m < 10 => format!("oh {}", cardinal(m)),
        m => cardinal(m),
    };
    let half = if hours == 12 && minutes == "o'clock" {
        ""
    } else if hours < 12 {
        " a m"
    } else {
        " p m"
    };
    format!("{} {minutes}{half}", cardinal(h12))
}

/// The most digits a number may have to be read as a quantity ("nine hundred ninety nine
/// billion …"); a longer one is a code or a phone number, read digit by digit.
const QUANTITY_DIGITS: usize = 12;

/// Digits read one by one go in groups of this many, a pause (a comma) between groups: "zero
/// zero four, nine eight nine" is heard as a number, and the voice gets clause breaks.
const DIGIT_GROUP: usize = 3;

/// The most digits read one by one; the rest are counted, not read ("…, and three thousand
/// nine hundred seventy five more digits"). A driver cannot take in more, and every digit read
/// is a word the voice must say.
const DIGITS_READ: usize = 24;

/// "0049891" → "zero zero four, nine eight nine, one"; past [`DIGITS_READ`], how many more.
fn digit_by_digit(digits: &str) -> String {
    let digits: Vec<&str> = digits
        .chars()
        .filter_map(|d| d.to_digit(10))
        .map(|d| ONES[d as usize])
        .collect();
    let read = digits[..digits.len().min(DIGITS_READ)]
        .chunks(DIGIT_GROUP)
        .map(|group| group.join(" "))
        .collect::<Vec<_>>()
        .join(", ");
    match digits.len().saturating_sub(DIGITS_READ) {
        0 => read,
        1 => format!("{read}, and one more digit"),
        more => format!("{read}, and {} more digits", cardinal(more as u64)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperatures_and_halves() {
        assert_eq!(
            speakable("It's 21.5 °C in here."),
            "It's twenty one and a half degrees in here."
        );
        assert_eq!(speakable("Set to 20°C"), "Set to twenty degrees");
        assert_eq!(speakable("-3 °C outside"), "minus three degrees outside");
        assert_eq!(speakable("1 °C"), "one degree");
        assert_eq!(speakable("0.5 km"), "half a kilometre");
        assert_eq!(speakable("add 0.5"), "add a half");
    }

    #[test]
    fn units_percent_and_speeds() {
        assert_eq!(
            speakable("Range 412 km, tank 38%."),
            "Range four hundred twelve kilometres, tank thirty eight percent."
        );
        assert_eq!(speakable("at 80km/h"), "at eighty kilometres per hour");
        assert_eq!(speakable("2.4 bar"), "two point four bar");
        assert_eq!(
            speakable("tuned to 101.3 MHz"),
            "tuned to one hundred one point three megahertz"
        );
        assert_eq!(speakable("1,200 m"), "one thousand two hundred metres");
    }

    #[test]
    fn times_ordinals_and_abbreviations() {
        assert_eq!(speakable("at 14:30"), "at two thirty p m");
        assert_eq!(speakable("at 8:05."), "at eight oh five a m.");
        assert_eq!(speakable("12:00"), "twelve o'clock");
        assert_eq!(speakable("the 3rd exit"), "the third exit");
        assert_eq!(speakable("on the 22nd"), "on the twenty second");
        assert_eq!(
            speakable("Turn onto Main St. e.g. now"),
            "Turn onto Main Street for example now"
        );
        assert_eq!(speakable("No. 5, no."), "number five, no.");
    }

    #[test]
    fn markdown_goes_and_words_stay() {
        assert_eq!(
            speakable("**Sure!** Here's a `joke`"),
            "Sure! Here's a joke"
        );
        assert_eq!(speakable("A2 and B4"), "A2 and B4");
        assert_eq!(speakable("rock & roll"), "rock and roll");
        assert_eq!(speakable("call 0049891234567890123456"), "call zero zero four, nine eight nine, one two three, four five six, seven eight nine, zero one two, three four five, six");
    }

    /// Issue 37: a long number was read whole, digit by digit (a 3,999-digit one made one
    /// phrase of 4,000 words, and the voice's memory grew to 22 GB); one from 2,000 trillion up
    /// (16 digits) panicked in `cardinal`.
    #[test]
    fn long_numbers_are_read_in_groups_and_only_so_far() {
        assert_eq!(
            speakable(&format!("call {}", "9".repeat(3999))),
            "call nine nine nine, nine nine nine, nine nine nine, nine nine nine, nine nine nine, \
             nine nine nine, nine nine nine, nine nine nine, and three thousand nine hundred \
             seventy five more digits"
        );
        assert_eq!(
            speakable("code 1234567890123456789"),
            "code one two three, four five six, seven eight nine, zero one two, three four five, six seven eight, nine"
        );
        assert_eq!(
            speakable("-1000000000000000000 at 0.12345678901234567890123456"),
            "minus one zero zero, zero zero zero, zero zero zero, zero zero zero, zero zero zero, \
             zero zero zero, zero at zero point one two three, four five six, seven eight nine, \
             zero one two, three four five, six seven eight, nine zero one, two three four, \
             and two more digits"
        );
        assert_eq!(
            speakable("999999999999 km"),
            "nine hundred ninety nine billion nine hundred ninety nine million nine hundred \
             ninety nine thousand nine hundred ninety nine kilometres"
        );
        // Whatever the digits, what is read stays short.
        for digits in ["9", "99999", &"1".repeat(25), &"7".repeat(100_000)] {
            assert!(
                speakable(digits).split_whitespace().count() <= 40,
                "{digits}"
            );
        }
    }

    #[test]
    fn cardinals() {
        assert_eq!(cardinal(0), "zero");
        assert_eq!(cardinal(15), "fifteen");
        assert_eq!(cardinal(40), "forty");
        assert_eq!(cardinal(101), "one hundred one");
        assert_eq!(cardinal(2_000_005), "two million five");
        assert_eq!(ordinal(40), "fortieth");
        // Issue 37: past a thousand trillion, `under_thousand` indexed past its words.
        assert_eq!(
            cardinal(999_999_999_999_999),
            "nine hundred ninety nine trillion nine hundred ninety nine billion nine hundred \
             ninety nine million nine hundred ninety nine thousand nine hundred ninety nine"
        );
        assert!(cardinal(u64::MAX).starts_with("one eight four, four six seven,"));
    }
}
