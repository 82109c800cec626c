/*
 * argon.c: what Argon adds to an unmodified PostgreSQL so that Neon's tools work.
 *
 * Loaded with shared_preload_libraries; it has no SQL objects of its own.
 *
 *  1. Privileged CREATE EXTENSION.  A member of argon.privileged_role (neon_superuser)
 *     may CREATE / ALTER ... UPDATE the extensions named in argon.allowed_extensions.
 *     The command runs as the bootstrap superuser; the extension then belongs to the
 *     caller (its member objects to the superuser), which is what PostgreSQL does for
 *     a "trusted" extension.  Nothing else is run with raised rights.
 *  2. Event triggers.  The same members may CREATE EVENT TRIGGER; the trigger is made
 *     as the superuser, then handed to the caller so they can ALTER / DROP it.  To
 *     keep such a trigger from running user code with superuser rights, an event
 *     trigger function owned by a non-superuser is skipped whenever the command that
 *     fires it runs as a superuser (Argon's control plane, our own elevated CREATE
 *     EXTENSION).  Neon and Supabase's supautils follow the same rule.
 *  3. EXPLAIN (FILECACHE [boolean]), which Neon's tools send, is accepted: registered
 *     as an EXPLAIN option on PostgreSQL 18+, taken out of the option list before
 *     PostgreSQL parses it on older majors.  Argon has no local file cache in front
 *     of remote storage, so there is nothing to add to the plan.
 *  4. CREATE SUBSCRIPTION on PostgreSQL 15, where only superusers may: the same members
 *     may, as pg_create_subscription's members may from 16 (with 16's rules: CREATE on
 *     the database, a password in the connection string).  It runs as the superuser,
 *     then the subscription belongs to the caller, so its workers apply changes with
 *     the caller's rights, and the caller may ALTER / DROP it.
 *  5. CREATE PUBLICATION ... FOR ALL TABLES / FOR TABLES IN SCHEMA, superuser-only in
 *     PostgreSQL, which Neon lets neon_superuser run: the same members may (with CREATE
 *     on the database, PostgreSQL's rule for any publication); the publication then
 *     belongs to the caller.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_event_trigger.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_publication.h"
#include "catalog/pg_subscription.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#if PG_VERSION_NUM >= 180000
#include "commands/explain_state.h"
#endif

#ifdef PG_MODULE_MAGIC_EXT
PG_MODULE_MAGIC_EXT(.name = "argon", .version = "1.0");
#else
PG_MODULE_MAGIC;
#endif

/* PostgreSQL 16 folded the per-catalog ACL checks into object_aclcheck/ownercheck. */
#if PG_VERSION_NUM >= 160000
#define schema_aclcheck(nsp, role, mode) object_aclcheck(NamespaceRelationId, nsp, role, mode)
#define proc_aclcheck(fn, role, mode) object_aclcheck(ProcedureRelationId, fn, role, mode)
#define extension_ownercheck(ext, role) object_ownercheck(ExtensionRelationId, ext, role)
#define database_aclcheck(db, role, mode) object_aclcheck(DatabaseRelationId, db, role, mode)
#else
#define schema_aclcheck(nsp, role, mode) pg_namespace_aclcheck(nsp, role, mode)
#define proc_aclcheck(fn, role, mode) pg_proc_aclcheck(fn, role, mode)
#define extension_ownercheck(ext, role) pg_extension_ownercheck(ext, role)
#define database_aclcheck(db, role, mode) pg_database_aclcheck(db, role, mode)
#endif

void		_PG_init(void);

static char *privileged_role = NULL;
static char *allowed_extensions = NULL;

static ProcessUtility_hook_type prev_utility_hook = NULL;
static needs_fmgr_hook_type prev_needs_fmgr_hook = NULL;
static fmgr_hook_type prev_fmgr_hook = NULL;

/* Passes a utility statement down the hook chain as if we were not here. */
static void
next_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			 ProcessUtilityContext context, ParamListInfo params,
			 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_utility_hook)
		prev_utility_hook(pstmt, queryString, readOnlyTree, context, params,
						  queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* The current user is not a superuser but has the rights of argon.privileged_role. */
static bool
caller_is_privileged(void)
{
	Oid			role;

	if (superuser() || InSecurityRestrictedOperation())
		return false;
	if (privileged_role == NULL || privileged_role[0] == '\0')
		return false;
	role = get_role_oid(privileged_role, true);
	return OidIsValid(role) && has_privs_of_role(GetUserId(), role);
}

static bool
extension_is_allowed(const char *name)
{
	char	   *copy;
	List	   *names;
	ListCell   *lc;
	bool		found = false;

	if (allowed_extensions == NULL)
		return false;
	copy = pstrdup(allowed_extensions);
	if (!SplitIdentifierString(copy, ',', &names))
		return false;			/* the GUC check hook refuses such a value */
	foreach(lc, names)
	{
		if (strcmp((const char *) lfirst(lc), name) == 0)
		{
			found = true;
			break;
		}
	}
	list_free(names);
	pfree(copy);
	return found;
}

static bool
check_allowed_extensions(char **newval, void **extra, GucSource source)
{
	char	   *copy = pstrdup(*newval);
	List	   *names;
	bool		ok = SplitIdentifierString(copy, ',', &names);

	if (!ok)
		GUC_check_errdetail("List syntax is invalid.");
	list_free(names);
	pfree(copy);
	return ok;
}

/* Every extension oid in this database, to tell what a CASCADE added. */
static List *
extension_oids(void)
{
	List	   *out = NIL;
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	SysScanDesc scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	HeapTuple	tup;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		out = lappend_oid(out, ((Form_pg_extension) GETSTRUCT(tup))->oid);
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return out;
}

/* Hands an extension to ``owner``, as PostgreSQL does for a trusted extension. */
static void
give_extension_to(Oid extoid, Oid owner)
{
	Relation	rel = table_open(ExtensionRelationId, RowExclusiveLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(extoid));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "extension with oid %u vanished", extoid);
	tup = heap_copytuple(tup);
	((Form_pg_extension) GETSTRUCT(tup))->extowner = owner;
	CatalogTupleUpdate(rel, &tup->t_self, tup);
	systable_endscan(scan);
	table_close(rel, RowExclusiveLock);
	changeDependencyOnOwner(ExtensionRelationId, extoid, owner);
	CommandCounterIncrement();
}

/*
 * Hands an object made as the superuser to ``owner``: the owner column ``owner_col`` of
 * its catalog row ``tup`` (a syscache copy, freed here) and its owner dependency.
 */
static void
give_catalog_object_to(Oid classid, HeapTuple tup, Oid objid, int owner_col, Oid owner)
{
	Relation	rel = table_open(classid, RowExclusiveLock);
	Datum		value = ObjectIdGetDatum(owner);
	bool		isnull = false;
	HeapTuple	changed = heap_modify_tuple_by_cols(tup, RelationGetDescr(rel), 1,
													&owner_col, &value, &isnull);

	CatalogTupleUpdate(rel, &changed->t_self, changed);
	changeDependencyOnOwner(classid, objid, owner);
	heap_freetuple(changed);
	heap_freetuple(tup);
	table_close(rel, RowExclusiveLock);
	CommandCounterIncrement();
}

static void
give_event_trigger_to(const char *name, Oid owner)
{
	HeapTuple	tup = SearchSysCacheCopy1(EVENTTRIGGERNAME, CStringGetDatum(name));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "event trigger \"%s\" vanished", name);
	give_catalog_object_to(EventTriggerRelationId, tup,
						   ((Form_pg_event_trigger) GETSTRUCT(tup))->oid,
						   Anum_pg_event_trigger_evtowner, owner);
}

/*
 * Rights Neon gives neon_superuser on what some extensions create as the superuser:
 * pg_stat_statements_reset() (revoked from PUBLIC by its script) and USAGE on the
 * foreign-data wrappers, so the owner can CREATE SERVER.  Runs as the superuser,
 * right after the extension is made; each query yields the GRANTs to run.
 */
static const struct
{
	const char *extension;
	const char *grants;
}			extension_grants[] = {
	{"pg_stat_statements",
	 "SELECT format('GRANT EXECUTE ON FUNCTION %s TO %I', p.oid::regprocedure, $1) "
	 "FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass "
	 "AND d.objid = p.oid AND d.deptype = 'e' "
	 "JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_stat_statements' "
	 "WHERE p.proname = 'pg_stat_statements_reset'"},
	{"postgres_fdw",
	 "SELECT format('GRANT USAGE ON FOREIGN DATA WRAPPER postgres_fdw TO %I', $1)"},
	{"dblink",
	 "SELECT format('GRANT USAGE ON FOREIGN DATA WRAPPER dblink_fdw TO %I', $1)"},
};

static void
grant_extension_rights(const char *extname)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	List	   *grants = NIL;
	ListCell   *lc;
	uint64		i;
	size_t		n;

	for (n = 0; n < lengthof(extension_grants); n++)
		if (strcmp(extension_grants[n].extension, extname) == 0)
			break;
	if (n == lengthof(extension_grants))
		return;
	args[0] = CStringGetTextDatum(privileged_role);
	SPI_connect();
	/* read_only = false: a fresh snapshot, which sees what the script just made */
	if (SPI_execute_with_args(extension_grants[n].grants, 1, argtypes, args, NULL,
							  false, 0) != SPI_OK_SELECT)
		elog(ERROR, "argon: could not list the grants for extension \"%s\"", extname);
	for (i = 0; i < SPI_processed; i++)
		grants = lappend(grants,
						 pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
	foreach(lc, grants)
	{
		if (SPI_execute((const char *) lfirst(lc), false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "argon: could not run \"%s\"", (const char *) lfirst(lc));
	}
	SPI_finish();
}

/* CREATE EXTENSION must not put superuser-owned objects where the caller may not create. */
static void
check_target_schema(CreateExtensionStmt *stmt, Oid caller)
{
	ListCell   *lc;
	char	   *schema = NULL;
	Oid			nsp = InvalidOid;

	foreach(lc, stmt->options)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, "schema") == 0)
			schema = defGetString(d);
	}
	if (schema != NULL)
		nsp = get_namespace_oid(schema, true);
	else
	{
		List	   *path = fetch_search_path(false);

		if (path != NIL)
			nsp = linitial_oid(path);
		list_free(path);
	}
	if (OidIsValid(nsp) && schema_aclcheck(nsp, caller, ACL_CREATE) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for schema %s", get_namespace_name(nsp)),
				 errhint("Create the extension in a schema you may create objects in.")));
}

/* The event trigger's function: the caller may run it and it is not a superuser's. */
static void
check_event_trigger_function(CreateEventTrigStmt *stmt, Oid caller)
{
	Oid			fn = LookupFuncName(stmt->funcname, 0, NULL, false);
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	if (proc_aclcheck(fn, caller, ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, NameListToString(stmt->funcname));
	if (superuser_arg(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("an event trigger created by a non-superuser must use a function "
						"owned by a non-superuser"),
				 errdetail("Function %s is owned by a superuser.",
						   NameListToString(stmt->funcname))));
}

typedef enum Elevation
{
	ELEVATE_NONE,
	ELEVATE_CREATE_EXTENSION,
	ELEVATE_UPDATE_EXTENSION,
	ELEVATE_CREATE_EVENT_TRIGGER,
	ELEVATE_CREATE_SUBSCRIPTION,
	ELEVATE_CREATE_PUBLICATION
} Elevation;

/* A publication only a superuser may create: every table, or every table of a schema. */
static bool
publication_needs_superuser(CreatePublicationStmt *stmt)
{
	ListCell   *lc;

	if (stmt->for_all_tables)
		return true;
	foreach(lc, stmt->pubobjects)
	{
		PublicationObjSpec *obj = (PublicationObjSpec *) lfirst(lc);

		if (obj->pubobjtype == PUBLICATIONOBJ_TABLES_IN_SCHEMA ||
			obj->pubobjtype == PUBLICATIONOBJ_TABLES_IN_CUR_SCHEMA)
			return true;
	}
	return false;
}

static void
give_publication_to(const char *name, Oid owner)
{
	HeapTuple	tup = SearchSysCacheCopy1(PUBLICATIONNAME, CStringGetDatum(name));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "publication \"%s\" vanished", name);
	give_catalog_object_to(PublicationRelationId, tup,
						   ((Form_pg_publication) GETSTRUCT(tup))->oid,
						   Anum_pg_publication_pubowner, owner);
}

#if PG_VERSION_NUM < 160000
/*
 * A password in a libpq connection string (key=value or URI form).  PostgreSQL 16
 * makes a non-superuser's subscription use one (password_required), so that it
 * cannot log in somewhere as the server's OS account; 15 has no such check.
 */
static bool
conninfo_has_password(const char *conninfo)
{
	const char *p = conninfo;

	if (strncmp(p, "postgresql://", 13) == 0 || strncmp(p, "postgres://", 11) == 0)
	{
		const char *auth = strstr(p, "://") + 3;
		size_t		len = strcspn(auth, "/?");
		const char *at = memchr(auth, '@', len);
		const char *colon = at ? memchr(auth, ':', at - auth) : NULL;

		if (colon != NULL && colon + 1 < at)
			return true;
		p = strchr(auth, '?');
		while (p != NULL)
		{
			p++;
			if (strncmp(p, "password=", 9) == 0 && p[9] != '\0' && p[9] != '&')
				return true;
			p = strchr(p, '&');
		}
		return false;
	}
	while (*p)
	{
		const char *key;
		size_t		keylen;
		bool		nonempty = false;

		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (*p == '\0')
			break;
		key = p;
		while (*p && *p != '=' && *p != ' ' && *p != '\t')
			p++;
		keylen = p - key;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '=')
			return false;		/* not valid: CREATE SUBSCRIPTION will say so */
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\'')
		{
			for (p++; *p && *p != '\''; p++)
			{
				if (*p == '\\' && p[1])
					p++;
				nonempty = true;
			}
			if (*p)
				p++;
		}
		else
			for (; *p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r'; p++)
				nonempty = true;
		if (keylen == 8 && strncmp(key, "password", 8) == 0 && nonempty)
			return true;
	}
	return false;
}

/* PostgreSQL 16's rules for a member of pg_create_subscription, checked as the caller. */
static void
check_create_subscription(CreateSubscriptionStmt *stmt, Oid caller)
{
	if (database_aclcheck(MyDatabaseId, caller, ACL_CREATE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_DATABASE, get_database_name(MyDatabaseId));
	if (!conninfo_has_password(stmt->conninfo))
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("password is required"),
				 errdetail("Non-superusers must provide a password in the connection string.")));
}

/* Hands the new subscription to ``owner``: its workers then run with the owner's rights. */
static void
give_subscription_to(const char *name, Oid owner)
{
	HeapTuple	tup = SearchSysCacheCopy2(SUBSCRIPTIONNAME, ObjectIdGetDatum(MyDatabaseId),
										  CStringGetDatum(name));

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "subscription \"%s\" vanished", name);
	give_catalog_object_to(SubscriptionRelationId, tup,
						   ((Form_pg_subscription) GETSTRUCT(tup))->oid,
						   Anum_pg_subscription_subowner, owner);
}
#endif

/* Which privileged command this is, after the checks that must run as the caller. */
static Elevation
classify(Node *parsetree, Oid caller)
{
	switch (nodeTag(parsetree))
	{
		case T_CreateExtensionStmt:
			{
				CreateExtensionStmt *stmt = (CreateExtensionStmt *) parsetree;

				if (!extension_is_allowed(stmt->extname))
					return ELEVATE_NONE;
				if (stmt->if_not_exists && OidIsValid(get_extension_oid(stmt->extname, true)))
					return ELEVATE_NONE;	/* PostgreSQL answers with a notice */
				check_target_schema(stmt, caller);
				return ELEVATE_CREATE_EXTENSION;
			}
		case T_AlterExtensionStmt:
			{
				AlterExtensionStmt *stmt = (AlterExtensionStmt *) parsetree;
				Oid			ext;

				if (!extension_is_allowed(stmt->extname))
					return ELEVATE_NONE;
				ext = get_extension_oid(stmt->extname, false);
				if (!extension_ownercheck(ext, caller))
					aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_EXTENSION, stmt->extname);
				return ELEVATE_UPDATE_EXTENSION;
			}
		case T_CreateEventTrigStmt:
			check_event_trigger_function((CreateEventTrigStmt *) parsetree, caller);
			return ELEVATE_CREATE_EVENT_TRIGGER;
		case T_CreatePublicationStmt:
			if (!publication_needs_superuser((CreatePublicationStmt *) parsetree))
				return ELEVATE_NONE;
			if (database_aclcheck(MyDatabaseId, caller, ACL_CREATE) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_DATABASE,
							   get_database_name(MyDatabaseId));
			return ELEVATE_CREATE_PUBLICATION;
#if PG_VERSION_NUM < 160000
		case T_CreateSubscriptionStmt:
			check_create_subscription((CreateSubscriptionStmt *) parsetree, caller);
			return ELEVATE_CREATE_SUBSCRIPTION;
#endif
		default:
			return ELEVATE_NONE;
	}
}

/*
 * The extensions this command made (the named one and what CASCADE pulled in) must
 * all be allowed; each then belongs to the caller.
 */
static void
adopt_new_extensions(List *before, Oid caller)
{
	List	   *after = extension_oids();
	ListCell   *lc;

	foreach(lc, after)
	{
		Oid			ext = lfirst_oid(lc);
		char	   *name;

		if (list_member_oid(before, ext))
			continue;
		name = get_extension_name(ext);
		if (!extension_is_allowed(name))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to create extension \"%s\"", name),
					 errdetail("Extension \"%s\" is not among the extensions this platform "
							   "supports (argon.allowed_extensions).", name)));
		give_extension_to(ext, caller);
		grant_extension_rights(name);
	}
}

#if PG_VERSION_NUM < 180000
static PlannedStmt *without_filecache_option(PlannedStmt *pstmt, bool *readOnlyTree);
#endif

static void
argon_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			  ProcessUtilityContext context, ParamListInfo params,
			  QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	Oid			caller = GetUserId();
	Elevation	what = ELEVATE_NONE;
	List	   *before = NIL;
	Oid			save_userid;
	int			save_sec_context;

#if PG_VERSION_NUM < 180000
	if (IsA(parsetree, ExplainStmt))
	{
		pstmt = without_filecache_option(pstmt, &readOnlyTree);
		parsetree = pstmt->utilityStmt;
	}
#endif
	if (caller_is_privileged())
		what = classify(parsetree, caller);
	if (what == ELEVATE_NONE)
	{
		next_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		return;
	}
	if (what == ELEVATE_CREATE_EXTENSION)
		before = extension_oids();

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		next_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		if (what == ELEVATE_CREATE_EXTENSION)
			adopt_new_extensions(before, caller);
		else if (what == ELEVATE_CREATE_EVENT_TRIGGER)
			give_event_trigger_to(((CreateEventTrigStmt *) parsetree)->trigname, caller);
		else if (what == ELEVATE_CREATE_PUBLICATION)
			give_publication_to(((CreatePublicationStmt *) parsetree)->pubname, caller);
#if PG_VERSION_NUM < 160000
		else if (what == ELEVATE_CREATE_SUBSCRIPTION)
			give_subscription_to(((CreateSubscriptionStmt *) parsetree)->subname, caller);
#endif
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
}

/* An event trigger function whose owner is not a superuser. */
static bool
is_user_event_trigger_function(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	bool		result;
	Form_pg_proc proc;

	if (!HeapTupleIsValid(tup))
		return false;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	result = proc->prorettype == EVENT_TRIGGEROID && !superuser_arg(proc->proowner);
	ReleaseSysCache(tup);
	return result;
}

static bool
argon_needs_fmgr_hook(Oid fn)
{
	if (prev_needs_fmgr_hook && prev_needs_fmgr_hook(fn))
		return true;
	return is_user_event_trigger_function(fn);
}

static Datum
skipped_event_trigger(PG_FUNCTION_ARGS)
{
	PG_RETURN_NULL();
}

static void
argon_fmgr_hook(FmgrHookEventType event, FmgrInfo *flinfo, Datum *arg)
{
	/* The call itself happens through flinfo right after FHET_START. */
	if (event == FHET_START && superuser() && is_user_event_trigger_function(flinfo->fn_oid))
	{
		ereport(DEBUG1,
				(errmsg("skipping event trigger function %s for superuser %s",
						get_func_name(flinfo->fn_oid), GetUserNameFromId(GetUserId(), false))));
		flinfo->fn_addr = skipped_event_trigger;
	}
	if (prev_fmgr_hook)
		prev_fmgr_hook(event, flinfo, arg);
}

#if PG_VERSION_NUM < 180000
/*
 * Before 18 an extension cannot register EXPLAIN options: take FILECACHE out of the
 * option list (after checking its value) before PostgreSQL parses it.
 */
static PlannedStmt *
without_filecache_option(PlannedStmt *pstmt, bool *readOnlyTree)
{
	ExplainStmt *stmt = (ExplainStmt *) pstmt->utilityStmt;
	List	   *kept = NIL;
	ListCell   *lc;
	bool		found = false;

	foreach(lc, stmt->options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, "filecache") == 0)
		{
			(void) defGetBoolean(opt);
			found = true;
		}
	}
	if (!found)
		return pstmt;
	if (*readOnlyTree)
	{
		pstmt = copyObject(pstmt);
		*readOnlyTree = false;
		stmt = (ExplainStmt *) pstmt->utilityStmt;
	}
	foreach(lc, stmt->options)
	{
		DefElem    *opt = (DefElem *) lfirst(lc);

		if (strcmp(opt->defname, "filecache") != 0)
			kept = lappend(kept, opt);
	}
	stmt->options = kept;
	return pstmt;
}
#endif

#if PG_VERSION_NUM >= 180000
static void
filecache_option(ExplainState *es, DefElem *opt, ParseState *pstate)
{
	(void) defGetBoolean(opt);	/* validates the value: FILECACHE [ boolean ] */
}
#endif

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errmsg("argon must be loaded via shared_preload_libraries")));

	DefineCustomStringVariable("argon.privileged_role",
							   "Role whose members may create the allowed extensions and event triggers.",
							   NULL, &privileged_role, "neon_superuser",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("argon.allowed_extensions",
							   "Extensions members of argon.privileged_role may create.",
							   NULL, &allowed_extensions, "",
							   PGC_SIGHUP, GUC_LIST_INPUT, check_allowed_extensions, NULL, NULL);
	MarkGUCPrefixReserved("argon");

	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = argon_utility;
	prev_needs_fmgr_hook = needs_fmgr_hook;
	needs_fmgr_hook = argon_needs_fmgr_hook;
	prev_fmgr_hook = fmgr_hook;
	fmgr_hook = argon_fmgr_hook;

#if PG_VERSION_NUM >= 180000
	RegisterExtensionExplainOption("filecache", filecache_option);
#endif
}
