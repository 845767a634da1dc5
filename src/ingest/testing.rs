//! A fault to inject from tests: the proof that a crash while reading one source stays
//! that source's failure (the poll goes on, the daemon keeps running). Nothing calls it
//! outside tests; it costs one uncontended lock per document.

use std::sync::Mutex;

static MARKER: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// From now on, reading a document that contains `marker` panics (`None` stops it).
#[doc(hidden)]
pub fn crash_on_documents_containing(marker: Option<&[u8]>) {
    if let Ok(mut slot) = MARKER.lock() {
        *slot = marker.map(<[u8]>::to_vec);
    }
}

/// Panics when a test asked for it and `document` carries its marker.
pub(crate) fn crash_if_marked(document: &[u8]) {
    let marked = MARKER.lock().ok().is_some_and(|slot| {
        slot.as_deref()
            .is_some_and(|m| !m.is_empty() && document.windows(m.len()).any(|w| w == m))
    });
    if marked {
        panic!("a crash injected by a test");
    }
}
