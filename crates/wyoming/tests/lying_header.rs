//! A regression test: a header announcing 16 MiB made the reader allocate all of it before a
//! byte of the section arrived, so a few lying headers on a few connections cost gigabytes.
//! Its own test binary, since it counts every allocation of the process.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, noting the largest block asked for.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

#[tokio::test]
async fn a_header_that_lies_about_its_lengths_costs_only_the_bytes_sent() {
    let lying = format!(
        "{{\"type\":\"audio-chunk\",\"data_length\":{},\"payload_length\":{}}}\n{{}}",
        2,
        16 << 20
    );
    let mut stream = lying.as_bytes();
    LARGEST.store(0, Ordering::Relaxed);
    let err = wyoming::read(&mut stream).await.unwrap_err();
    assert!(matches!(err, wyoming::Error::Io(_)), "{err}");
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest <= 256 << 10,
        "the reader allocated {largest} bytes for 2 bytes of data"
    );

    // A real chunk of the same size still arrives whole.
    let pcm = vec![7u8; 16 << 20];
    let mut bytes = Vec::new();
    let chunk = wyoming::audio_chunk(wyoming::AudioFormat::SPEECH, pcm.clone());
    wyoming::write(&mut bytes, &chunk).await.unwrap();
    let read = wyoming::read(&mut &bytes[..]).await.unwrap().unwrap();
    assert_eq!(read.payload, pcm);
}
