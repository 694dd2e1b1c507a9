//! A `jsonb` value PostgreSQL already built (e.g. by `INSERT … RETURNING report`), returned
//! as it is. pgrx's `JsonB` would turn it into a `serde_json::Value` and back into text that
//! `jsonb_in` parses again: about 50 µs per report, a few percent of a contact erasure.

use pgrx::callconv::{BoxRet, FcInfo};
use pgrx::datum::IntoDatum;
use pgrx::pg_sys;
use pgrx::spi::SpiTupleTable;

use crate::error::{ExtError, ExtResult};

/// A `jsonb` datum allocated in the memory context of the function call that returns it.
pub struct JsonbDatum(pg_sys::Datum);

impl JsonbDatum {
    /// Column `ordinal` (1-based) of the current row of an SPI result, a `jsonb`, copied out of
    /// SPI's memory into the context that was current when SPI was connected: the calling
    /// function's, so the datum outlives `SPI_finish`.
    pub fn transfer(table: &SpiTupleTable<'_>, ordinal: usize) -> ExtResult<JsonbDatum> {
        if table.column_type_oid(ordinal)?.value() != pg_sys::JSONBOID {
            return Err(ExtError::Internal(format!("column {ordinal} is not jsonb")));
        }
        let datum = table
            .get_datum_by_ordinal(ordinal)?
            .ok_or_else(|| ExtError::Internal(format!("column {ordinal} is NULL")))?;
        // SAFETY: SPI is connected (the table borrows its connection), the datum is a jsonb
        // (checked above), a varlena (typByVal false, typLen -1), valid for this row.
        let copied = unsafe { pg_sys::SPI_datumTransfer(datum, false, -1) };
        Ok(JsonbDatum(copied))
    }
}

impl IntoDatum for JsonbDatum {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        Some(self.0)
    }

    fn type_oid() -> pg_sys::Oid {
        pg_sys::JSONBOID
    }
}

// SAFETY: the datum is a valid jsonb in the caller's memory context (see `transfer`), which is
// what a function returning jsonb must hand back.
unsafe impl BoxRet for JsonbDatum {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> pgrx::datum::Datum<'fcx> {
        // SAFETY: returned straight to the function's caller, as `box_into` requires.
        unsafe { fcinfo.return_raw_datum(self.0) }
    }
}

// The SQL type is jsonb, as `IntoDatum::type_oid` says.
pgrx::impl_sql_translatable!(JsonbDatum, "jsonb");
