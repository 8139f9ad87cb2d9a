//! `roam-shm segment inspect`: header, peer table and pool usage of a segment file
//! (ours or one created by the published roam crates).

use std::path::Path;

use roam_shm::segment::peer::now_ns;
use roam_shm::segment::shared::SegmentShared;

use crate::AnyResult;

pub fn run(path: &Path, json: bool) -> AnyResult<()> {
    let seg = SegmentShared::open(None, Some(path))?;
    let h = seg.header();
    let now = now_ns();
    let peers: Vec<serde_json::Value> = seg
        .peer_table()
        .iter()
        .map(|(id, e)| {
            let hb = e.last_heartbeat();
            serde_json::json!({
                "peer_id": id,
                "state": e.state().map(|s| format!("{s:?}")).unwrap_or_else(|v| format!("invalid({v})")),
                "epoch": e.epoch(),
                "guest_pid": e.guest_pid(),
                "heartbeat_age_ms": if hb == 0 { None } else { Some(now.saturating_sub(hb) / 1_000_000) },
            })
        })
        .collect();
    let classes: Vec<serde_json::Value> = seg
        .pool()
        .stats()
        .iter()
        .map(|s| serde_json::json!({"slot_size": s.slot_size, "count": s.slot_count, "allocated": s.allocated}))
        .collect();
    let doc = serde_json::json!({
        "path": path.display().to_string(),
        "header": {
            "magic": String::from_utf8_lossy(&h.magic[..7]),
            "version": h.version,
            "header_size": h.header_size,
            "total_size": h.total_size,
            "current_size": h.current_size(),
            "max_payload_size": h.max_payload_size,
            "inline_threshold": h.inline_threshold,
            "effective_inline_threshold": h.effective_inline_threshold(),
            "max_guests": h.max_guests,
            "bipbuf_capacity": h.bipbuf_capacity,
            "peer_table_offset": h.peer_table_offset,
            "var_pool_offset": h.var_pool_offset,
            "heartbeat_interval_ns": h.heartbeat_interval,
            "host_goodbye": h.host_goodbye(),
            "num_var_slot_classes": h.num_var_slot_classes,
        },
        "peers": peers,
        "pool": classes,
    });
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("segment {}", path.display());
    println!(
        "  roam v{} ({}), {} bytes (current {}), header {} B",
        h.version,
        doc["header"]["magic"].as_str().unwrap_or("?"),
        h.total_size,
        h.current_size(),
        h.header_size
    );
    println!(
        "  {} guests, {} B rings, inline threshold {} (effective {}), max payload {}, heartbeat {} ns, host goodbye: {}",
        h.max_guests,
        h.bipbuf_capacity,
        h.inline_threshold,
        h.effective_inline_threshold(),
        h.max_payload_size,
        h.heartbeat_interval,
        h.host_goodbye()
    );
    println!("  peers (non-empty):");
    let mut any = false;
    for p in &peers {
        if p["state"] != "Empty" {
            any = true;
            println!("    {p}");
        }
    }
    if !any {
        println!("    (all {} entries empty)", h.max_guests);
    }
    println!("  slot pool @{}:", h.var_pool_offset);
    for s in seg.pool().stats() {
        println!(
            "    {:>9} B x {:>5}: {:>5} allocated",
            s.slot_size, s.slot_count, s.allocated
        );
    }
    Ok(())
}
