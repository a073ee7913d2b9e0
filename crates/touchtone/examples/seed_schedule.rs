use std::time::Instant;
use touchtone::DtmfSender;
fn main() {
    let t0 = Instant::now();
    let mut s = DtmfSender::new(48_000);
    s.set_can_send(true);
    s.insert_dtmf(t0, "12024561111", 400, 50).unwrap();
    let mut first = vec![];
    while let Some(t) = s.poll_timeout() {
        s.handle_timeout(t);
        while let Some(e) = s.poll_event() {
            print!("{:?}@{} ", e.tone(), (e.at() - t0).as_millis());
        }
        while let Some(p) = s.poll_packet() {
            if first.len() < 22 {
                first.push(p);
            }
        }
    }
    println!();
    for p in first {
        println!(
            "{:>4} ms  ts={} M={} event={} E={} vol={} dur={}",
            (p.at - t0).as_millis(),
            p.timestamp,
            p.marker as u8,
            p.payload.event,
            p.payload.end as u8,
            p.payload.volume,
            p.payload.duration
        );
    }
}
