//! A labelled synthetic corpus for judging and timing related posts: posts on known
//! topics, written mostly from everyday words, with 15% words of their topic, 10% of a
//! neighbouring topic (baking/cooking, networking/self-hosting, …) and 8% of any topic,
//! tagged inconsistently (40% untagged or with a vague tag like "notes"). Each vocabulary
//! has named words and a long tail of rarer made-up ones, as real text does.
//!
//! Shared by `tests/it/related_quality.rs` and `benches/related.rs` via `#[path]`.

#![allow(dead_code)]

/// One generated post.
#[derive(Debug, Clone)]
pub struct CorpusPost {
    pub id: i64,
    pub topic: usize,
    pub title: String,
    pub tags: Vec<String>,
    pub body: String,
    pub url: String,
}

pub struct Topic {
    pub name: &'static str,
    pub tags: &'static [&'static str],
    pub words: &'static [&'static str],
    /// Index of a topic whose vocabulary bleeds into this one.
    pub neighbour: usize,
}

#[rustfmt::skip]
pub const TOPICS: &[Topic] = &[
    Topic { name: "baking", tags: &["baking", "bread", "sourdough"], neighbour: 1, words: &["flour", "dough", "starter", "yeast", "oven", "crust", "crumb", "loaf", "knead", "proof", "ferment", "gluten", "hydration", "rye", "wheat", "bake", "banneton", "scoring", "levain", "bread", "sourdough", "butter", "salt", "rise", "bakery", "pastry", "croissant", "baguette", "sugar", "whisk", "tin", "cooling", "rack", "batch", "steam", "brioche", "focaccia", "roll", "grain", "mill"], },
    Topic { name: "cooking", tags: &["cooking", "recipes", "kitchen"], neighbour: 0, words: &["pan", "sauce", "simmer", "onion", "garlic", "stock", "broth", "roast", "knife", "chop", "season", "pepper", "herbs", "stew", "braise", "recipe", "skillet", "saute", "vegetables", "pasta", "rice", "beans", "lentils", "spices", "cumin", "paprika", "tomato", "lemon", "olive", "oil", "vinegar", "marinade", "grill", "soup", "curry", "dinner", "lunch", "leftovers", "pot", "boil"], },
    Topic { name: "cycling", tags: &["cycling", "bikes", "maintenance"], neighbour: 2, words: &["bike", "bicycle", "chain", "derailleur", "cassette", "tyre", "tube", "puncture", "saddle", "handlebar", "pedal", "crank", "brake", "cable", "gear", "shifting", "wheel", "spoke", "rim", "hub", "frame", "helmet", "commute", "ride", "cyclist", "lube", "pump", "valve", "gravel", "road", "climb", "descent", "cadence", "sprocket", "fork", "headset", "bottle", "cleat", "lights", "panniers"], },
    Topic { name: "running", tags: &["running", "fitness", "training"], neighbour: 2, words: &["run", "runner", "marathon", "pace", "stride", "shoes", "trainers", "interval", "tempo", "race", "mile", "kilometre", "track", "trail", "hill", "sprint", "recovery", "stretch", "injury", "knee", "calf", "hamstring", "heart", "rate", "endurance", "warmup", "cooldown", "jog", "splits", "finish", "start", "parkrun", "hydrate", "gel", "taper", "plan", "coach", "lap", "watch", "cadence"], },
    Topic { name: "networking", tags: &["networking", "homelab", "network"], neighbour: 4, words: &["router", "switch", "vlan", "subnet", "firewall", "dns", "dhcp", "gateway", "ethernet", "cable", "wifi", "access", "point", "packet", "latency", "bandwidth", "ipv6", "ipv4", "address", "port", "nat", "mesh", "modem", "fibre", "isp", "traffic", "route", "bridge", "interface", "ping", "traceroute", "mtu", "uplink", "trunk", "segment", "lan", "wan", "vpn", "wireguard", "throughput"], },
    Topic { name: "selfhosting", tags: &["self-hosting", "homelab", "servers"], neighbour: 4, words: &["server", "container", "docker", "backup", "restic", "nas", "disk", "raid", "zfs", "snapshot", "systemd", "service", "proxy", "nginx", "certificate", "tls", "domain", "uptime", "monitoring", "prometheus", "grafana", "logs", "update", "upgrade", "kernel", "linux", "debian", "volume", "mount", "cron", "database", "postgres", "sqlite", "replica", "restore", "storage", "memory", "cpu", "rack", "ssh"], },
    Topic { name: "gardening", tags: &["gardening", "garden", "plants"], neighbour: 6, words: &["garden", "soil", "compost", "seed", "seedling", "sow", "plant", "bed", "mulch", "weed", "water", "hose", "tomatoes", "beans", "peas", "lettuce", "garlic", "onions", "harvest", "frost", "greenhouse", "pot", "trowel", "spade", "prune", "roses", "shrub", "hedge", "lawn", "leaves", "worms", "manure", "fertiliser", "germinate", "transplant", "allotment", "raised", "border", "bloom", "perennial"], },
    Topic { name: "birding", tags: &["birds", "wildlife", "nature"], neighbour: 6, words: &["bird", "birding", "binoculars", "feeder", "nest", "robin", "sparrow", "finch", "wren", "owl", "hawk", "heron", "migration", "song", "call", "plumage", "wing", "flock", "wetland", "estuary", "hide", "scope", "species", "spotting", "dawn", "chorus", "warbler", "swallow", "swift", "gull", "kestrel", "woodpecker", "thrush", "blackbird", "tit", "egg", "fledgling", "seed", "suet", "reserve"], },
    Topic { name: "photography", tags: &["photography", "cameras", "photos"], neighbour: 7, words: &["camera", "lens", "aperture", "shutter", "iso", "exposure", "focus", "sensor", "tripod", "portrait", "landscape", "light", "shadow", "composition", "frame", "raw", "jpeg", "edit", "lightroom", "prime", "zoom", "bokeh", "flash", "film", "grain", "print", "histogram", "white", "balance", "telephoto", "wide", "angle", "mirrorless", "dslr", "autofocus", "filter", "polariser", "golden", "hour", "shot"], },
    Topic { name: "music", tags: &["music", "guitar", "practice"], neighbour: 9, words: &["guitar", "chord", "scale", "string", "fret", "strum", "pick", "tune", "tuning", "melody", "rhythm", "tempo", "metronome", "practice", "song", "piano", "keys", "note", "octave", "harmony", "riff", "amp", "pedal", "band", "gig", "rehearsal", "lesson", "teacher", "sheet", "tab", "capo", "bass", "drum", "beat", "groove", "solo", "improvise", "ear", "interval", "major"], },
    Topic { name: "astronomy", tags: &["astronomy", "space", "telescopes"], neighbour: 8, words: &["telescope", "star", "planet", "moon", "jupiter", "saturn", "mars", "galaxy", "nebula", "comet", "meteor", "eclipse", "orbit", "constellation", "orion", "eyepiece", "mount", "tracking", "sky", "dark", "observatory", "astrophotography", "exposure", "stacking", "light", "pollution", "solstice", "equinox", "crater", "rings", "cluster", "zenith", "horizon", "altitude", "azimuth", "finder", "dob", "reflector", "refractor", "night"], },
    Topic { name: "rust", tags: &["rust", "programming", "software"], neighbour: 5, words: &["rust", "cargo", "crate", "borrow", "checker", "lifetime", "trait", "generic", "async", "tokio", "future", "compile", "compiler", "clippy", "macro", "enum", "struct", "match", "ownership", "reference", "mutable", "iterator", "closure", "thread", "mutex", "channel", "unsafe", "pointer", "heap", "stack", "test", "benchmark", "error", "result", "option", "module", "library", "binary", "release", "debug"], },
];

/// Everyday words every post uses (not stop words, so they reach the index).
#[rustfmt::skip]
const COMMON: &[&str] = &[
    "time", "week", "weekend", "morning", "evening", "people", "friend", "year", "day", "month", "work", "home",
    "house", "city", "place", "idea", "question", "answer", "problem", "result", "change", "start", "end", "part",
    "side", "hand", "eye", "head", "small", "large", "quick", "slow", "easy", "hard", "simple", "careful",
    "better", "worse", "cheap", "expensive", "early", "late", "new", "old", "happy", "tired", "busy", "quiet",
    "loud", "nice", "great", "fine", "real", "true", "whole", "half", "second", "minute", "hour", "moment",
    "story", "note", "list", "step", "tip", "trick", "mistake", "lesson", "habit", "routine", "plan", "goal",
    "budget", "money", "cost", "price", "shop", "buy", "sell", "bring", "carry", "leave", "find", "try", "learn",
    "teach", "show", "tell", "write", "read", "watch", "listen", "wait", "enjoy", "remember", "forget", "notice",
    "share", "open", "close",
];

/// A small deterministic generator (xorshift).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// `n` posts over all topics, ids 1..=n, in time order: 3 to 14 sentences (about 110
/// words on average).
pub fn generate(n: usize, seed: u64) -> Vec<CorpusPost> {
    generate_sized(n, seed, 3, 12)
}

/// `n` long posts: 70 to 89 sentences, about 1,000 words each.
pub fn generate_long(n: usize, seed: u64) -> Vec<CorpusPost> {
    generate_sized(n, seed, 70, 20)
}

/// `n` posts of `min + below(spread)` sentences of 6 to 19 words each.
fn generate_sized(n: usize, seed: u64, min: usize, spread: usize) -> Vec<CorpusPost> {
    let mut rng = Rng::new(seed);
    (1..=n as i64)
        .map(|id| {
            let topic = rng.below(TOPICS.len());
            let t = &TOPICS[topic];
            let word = |rng: &mut Rng| -> String {
                match rng.below(100) {
                    0..=14 => topic_word(rng, topic),
                    15..=24 => topic_word(rng, t.neighbour),
                    25..=32 => {
                        let any = rng.below(TOPICS.len());
                        topic_word(rng, any)
                    }
                    _ => common_word(rng),
                }
            };
            let title_len = 3 + rng.below(4);
            let title: Vec<String> = (0..title_len)
                .map(|i| {
                    if i == 0 {
                        rng.pick(t.words).to_owned()
                    } else {
                        word(&mut rng)
                    }
                })
                .collect();
            let mut body = String::new();
            let sentences = min + rng.below(spread);
            for _ in 0..sentences {
                let len = 6 + rng.below(14);
                let words: Vec<String> = (0..len).map(|_| word(&mut rng)).collect();
                body.push_str(&capitalize(&words.join(" ")));
                body.push_str(". ");
            }
            let mut tags = Vec::new();
            match rng.below(10) {
                0..=5 => {
                    tags.push(rng.pick(t.tags).to_owned());
                    if rng.chance(40) {
                        tags.push(rng.pick(t.tags).to_owned());
                    }
                }
                6 => tags.push(rng.pick(&["notes", "weekend", "misc", "ideas"]).to_owned()),
                _ => {}
            }
            tags.dedup();
            CorpusPost {
                id,
                topic,
                title: capitalize(&title.join(" ")),
                tags,
                body: body.trim_end().to_owned(),
                url: format!("https://corpus.example.org/{}/{id}", t.name),
            }
        })
        .collect()
}

/// Words beyond the named ones: each topic and the everyday vocabulary have a long tail
/// of rarer words, drawn log-uniformly (close to Zipf's law), as real writing does.
const TOPIC_TAIL: usize = 400;
const COMMON_TAIL: usize = 4_000;

fn topic_word(rng: &mut Rng, topic: usize) -> String {
    if rng.chance(60) {
        rng.pick(TOPICS[topic].words).to_owned()
    } else {
        pseudo_word(topic as u64 + 1, zipf_index(rng, TOPIC_TAIL))
    }
}

fn common_word(rng: &mut Rng) -> String {
    if rng.chance(50) {
        rng.pick(COMMON).to_owned()
    } else {
        pseudo_word(1_000, zipf_index(rng, COMMON_TAIL))
    }
}

/// An index in 0..n, small ones far more likely (log-uniform).
fn zipf_index(rng: &mut Rng, n: usize) -> usize {
    let u = (rng.next() % 1_000_000) as f64 / 1_000_000.0;
    ((n as f64).powf(u) as usize).saturating_sub(1).min(n - 1)
}

/// A pronounceable made-up word, fixed for (family, index).
fn pseudo_word(family: u64, index: usize) -> String {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "tre", "sun", "dar", "vel", "pon", "ris", "gal", "mor", "tin", "bex",
        "quo", "fen", "lis", "nor", "zam", "hul", "pri", "sto", "wen", "cra", "dul",
    ];
    let mut x = family.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ (index as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    let mut word = String::new();
    for _ in 0..3 {
        x ^= x >> 29;
        x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        word.push_str(SYLLABLES[(x % SYLLABLES.len() as u64) as usize]);
    }
    word
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
