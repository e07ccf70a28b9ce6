//! Stores flushing at the same time all finish: sled's own `flush_async` loses its wake-up when several
//! databases in one process flush at once (a service hung for good in a test run), so every store
//! flushes through `hazchem_bus::flush_sled`. This is that pattern, many times over, bounded in time.
//! The rounds run on a runtime of their own thread, so that a flush that never completes (and may hold
//! a worker thread) fails the test instead of hanging it.

use std::time::Duration;

#[test]
fn concurrent_flushes_of_several_stores_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let dbs: Vec<sled::Db> = (0..8)
        .map(|i| hazchem_bus::open_sled(&dir.path().join(i.to_string())).unwrap())
        .collect();
    let (done, finished) = std::sync::mpsc::channel();
    let writers = dbs.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for round in 0..200u32 {
                let flushes = writers.iter().map(|db| {
                    let db = db.clone();
                    tokio::spawn(async move {
                        db.insert(round.to_be_bytes(), &[0u8; 64][..]).unwrap();
                        hazchem_bus::flush_sled(&db).await.unwrap();
                    })
                });
                for flushed in futures::future::join_all(flushes).await {
                    flushed.unwrap();
                }
            }
        });
        done.send(()).unwrap();
    });
    finished
        .recv_timeout(Duration::from_secs(120))
        .expect("every flush completes");
    for db in &dbs {
        assert_eq!(db.len(), 200, "every write is in its store");
    }
}
