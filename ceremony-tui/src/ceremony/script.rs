//! A scripted console for tests and demonstrations: presses a key once a page showing a given
//! text is up, and records every page shown.

use super::{Console, Page};
use crate::keys::Key;
use std::collections::VecDeque;
use std::io;
use std::time::Duration;

/// Presses `key` once a page containing `when` is on screen; records every page.
pub struct Script {
    pub steps: VecDeque<(&'static str, Key)>,
    pub pages: Vec<String>,
    idle: usize,
}

impl Script {
    pub fn new(steps: &[(&'static str, Key)]) -> Self {
        Script {
            steps: steps.iter().copied().collect(),
            pages: Vec::new(),
            idle: 0,
        }
    }
    pub fn all_text(&self) -> String {
        self.pages.join("\n")
    }
}

/// The keys that record a deviation when the boot is judged against the plan: D, `reason` a
/// key at a time, Enter.
pub fn deviation_steps(reason: &'static str) -> Vec<(&'static str, Key)> {
    let mut v = vec![("[D] record a deviation", Key::Char('d'))];
    v.extend(reason.chars().map(|c| ("record a deviation", Key::Char(c))));
    v.push(("[Enter] witnesses agree", Key::Enter));
    v
}

impl Console for Script {
    fn show(&mut self, page: &Page) -> io::Result<()> {
        let mut t = page.text();
        if page.virtual_hardware {
            t.insert_str(0, "VIRTUAL HARDWARE ALLOWED\n");
        }
        if page.rehearsal {
            t.insert_str(0, "REHEARSAL\n");
        }
        for (k, w) in &page.keys {
            t.push_str(&format!("[{k}] {w}\n"));
        }
        if self.pages.last() != Some(&t) {
            self.pages.push(t);
        }
        Ok(())
    }

    fn next_key(&mut self, _: Duration) -> io::Result<Option<Key>> {
        let last = self.pages.last().cloned().unwrap_or_default();
        if let Some((when, key)) = self.steps.front().copied()
            && last.contains(when)
        {
            self.steps.pop_front();
            self.idle = 0;
            return Ok(Some(key));
        }
        self.idle += 1;
        assert!(
            self.idle < 500,
            "stuck: waiting for {:?}; the screen shows:\n{last}",
            self.steps.front()
        );
        Ok(None)
    }
}
